"""The open-set guard: out-of-vocabulary samples are no evidence about which of the model's words a user says."""

import numpy as np
import pytest

from tests.realdata import cifar_images, read_clip, require
from tflite_fineprune import Personalizer, open_set
from tflite_fineprune.auto_recipe import AutoRule, class_test

LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
SPEAKER = "0cb74144"  # a Speech Commands test-split speaker with 49 clips


def test_catch_all_classes_come_from_the_labels():
    assert open_set.out_of_vocabulary_classes(LABELS) == (10, 11)
    assert open_set.out_of_vocabulary_classes(("cat", "dog")) == ()


def test_check_counts_the_samples_outside_the_catch_all_classes():
    predicted = np.array([0, 11, 11, 3, 10, 9, 11])
    guard, mask, typical = open_set.check(predicted, LABELS, min_samples=3, min_share=0.1)
    assert typical.all() and guard.atypical == -1
    np.testing.assert_array_equal(mask, [True, False, False, True, False, True, False])
    assert (guard.samples, guard.in_domain, guard.enough, guard.filtered) == (7, 3, True, True)
    assert guard.catch_all == ("_silence_", "_unknown_") and "3 of 7 samples in-domain (43%)" in str(guard)


def test_too_few_in_domain_samples_or_too_small_a_share_is_not_enough():
    assert not open_set.check([11] * 40 + [0] * 9, LABELS, 10, 0.1)[0].enough
    assert not open_set.check([11] * 200 + [0] * 12, LABELS, 10, 0.1)[0].enough  # 12 of 212: under 10 %
    assert open_set.check([11] * 90 + [0] * 12, LABELS, 10, 0.1)[0].enough
    too_few = open_set.check([11] * 40, LABELS, 10, 0.1)[0]
    assert "the model stays dense" in str(too_few)


def test_a_negative_share_turns_the_guard_off_and_models_without_catch_all_classes_keep_every_sample():
    off, mask, _ = open_set.check([11] * 40, LABELS, 10, -1.0)
    assert off.enough and mask.all() and not off.enabled and "off" in str(off)
    vision, mask, _ = open_set.check([0, 1, 1], ("cat", "dog"), 1, 0.1)
    assert mask.all() and not vision.filtered and "no catch-all class" in str(vision)


def test_atypical_samples_leave_both_masks_and_catch_all_predictions_only_the_in_domain_one():
    predicted = np.array([0, 11, 11, 3, 10, 9])
    typicality = np.array([0.2, 0.5, 3.0, 1.5, 0.9, 1.0])
    guard, in_domain, typical = open_set.check(predicted, LABELS, 1, 0.1, typicality)
    np.testing.assert_array_equal(typical, [True, True, False, False, True, True])
    np.testing.assert_array_equal(in_domain, [True, False, False, False, False, True])
    assert (guard.in_domain, guard.atypical, guard.catch_all_predicted) == (2, 2, 3)
    assert "2 atypical" in str(guard)
    vision, in_domain, typical = open_set.check([0, 1, 1], ("cat", "dog"), 1, 0.1, [0.5, 7.0, 0.1])
    assert in_domain.tolist() == typical.tolist() == [True, False, True] and vision.in_domain == 2


def test_in_domain_samples_keep_arrays_lists_of_samples_and_lists_of_batches():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    mask = np.array([True, False, True, True, False, False])
    np.testing.assert_array_equal(open_set.in_domain_samples(x, mask), x[mask])
    samples = open_set.in_domain_samples(list(x), mask)
    assert isinstance(samples, list) and len(samples) == 3
    np.testing.assert_array_equal(open_set.in_domain_samples([x[:4], x[4:]], mask), x[mask])

    class Folder:  # a re-iterable of batches, like a streamed --data folder (folderdata.FolderData)
        def __iter__(self):
            yield from (x[:4], x[4:])

    filtered = open_set.in_domain_samples(Folder(), mask)
    assert not isinstance(filtered, (list, np.ndarray))  # still streamed, batch by batch, and re-iterable
    for _ in range(2):
        np.testing.assert_array_equal(np.concatenate(list(filtered)), x[mask])


def test_the_class_test_over_in_vocabulary_counts_excludes_nothing_the_full_counts_would():
    # The finding's speaker: 21 clips over the words, 63 more predicted _unknown_.
    words = [3, 2, 2, 1, 2, 2, 3, 2, 2, 2, 0]
    assert class_test(words + [63], 84, 0.5, 0.02).max_count >= 3  # every word counted ≤ 3 times would go
    assert class_test(words, 21, 0.5, 0.02).max_count == -1


def _speaker_and_unknown_words():
    root = require("speech_commands_v0.02_test")
    own = sorted(p for p in root.glob(f"*/{SPEAKER}_nohash_*.wav") if p.parent.name in LABELS[:10])
    others = sorted(p for p in (root / "_unknown_").glob("*.wav") if SPEAKER not in p.name)
    return (np.stack([read_clip(p) for p in own[:22]]),
            np.stack([read_clip(p) for p in others[::max(1, len(others) // 66)][:66]]))


@pytest.mark.slow
def test_speaker_with_75_percent_unknown_words_keeps_the_command_words(mlperf_kws):
    clips, unknown = _speaker_and_unknown_words()
    x = np.concatenate([clips, unknown])[np.random.default_rng(0).permutation(len(clips) + len(unknown))]
    p = Personalizer(mlperf_kws)
    unguarded = p.personalize(x, AutoRule(min_in_domain_share=-1.0), progress=False)
    assert len(unguarded.excluded_classes) >= 5  # the failure the guard answers (findings/open-set.md)
    report = p.personalize(x, progress=False)
    words = LABELS[:10]
    assert len(set(words) - set(report.excluded_classes)) >= 8 and "_unknown_" not in report.excluded_classes
    assert 0.15 < report.in_domain_share < 0.4 and "in-domain" in str(report)
    catch_all = int(np.sum(np.argmax(Personalizer(mlperf_kws).predict(x), -1) >= 10))  # the dense model's
    assert catch_all >= 50 and f"{catch_all} predicted _silence_/_unknown_" in report.open_set
    assert "class test and step 5" in report.open_set
    personalized = np.argmax(p.predict(clips), -1)
    assert np.mean(personalized < 10) > 0.8  # the speaker's words still come out as words


@pytest.mark.slow
def test_all_out_of_vocabulary_data_leaves_the_model_dense_and_says_why(mlperf_kws):
    _, unknown = _speaker_and_unknown_words()
    p = Personalizer(mlperf_kws)
    report = p.personalize(unknown, progress=False)
    assert report.recipe == "dense (too little in-domain data)"
    assert "too little in-domain data" in str(report) and report.in_domain_share < 0.15
    assert p.sparsity().pruned_units == 0


@pytest.fixture(scope="module")
def typed_export(tmp_path_factory):
    from tests import zoo
    from tflite_fineprune import export_model

    model = zoo.plain_cnn()
    reference = cifar_images(per_class=10, start=0).astype("float32")
    path = tmp_path_factory.mktemp("typicality") / "plain_cnn_typicality.tflite"
    export_model(model, path, reference_data=reference)
    return model, reference, path


def test_collect_typicality_is_the_numpy_score_of_the_keras_bn_inputs(typed_export):
    import keras

    from tflite_fineprune.export.normalization import NormLayer, layer_typicality, typicality_limits

    model, reference, path = typed_export
    p = Personalizer(path, batch_size=16)
    layers = [(NormLayer(name, channels, offset), None) for name, channels, offset in p.metadata.normalization_layers]
    probe = keras.Model(model.inputs[0], [model.get_layer(n.name).input for n, _ in layers])
    values = [np.asarray(v, np.float64) for v in probe(reference, training=False)]
    means = np.concatenate([v.reshape(len(v), -1, v.shape[-1]).mean(1) for v in values], axis=1)
    flat = [v.reshape(-1, v.shape[-1]) for v in values]
    mu, var = np.concatenate([f.mean(0) for f in flat]), np.concatenate([f.var(0) for f in flat])
    per_layer, combined = typicality_limits(means, layers, mu, var)
    expected = (layer_typicality(means, layers, mu, var) / per_layer).max(axis=1) / combined
    _, typicality = p.observe_typicality(reference, progress=False)
    np.testing.assert_allclose(typicality, expected, rtol=2e-3, atol=1e-4)
    assert 0.92 <= np.mean(typicality <= 1) <= 0.97  # the pool's 95th percentile is the limit
    _, overexposed = p.observe_typicality(reference * 10.0, progress=False)  # BN inputs far from the pool's
    assert np.all(overexposed > 1)


def test_an_export_without_reference_data_has_no_typicality_and_still_personalizes(exports):
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    x = cifar_images(per_class=2)
    outputs, typicality = p.observe_typicality(x, progress=False)
    assert typicality is None and outputs.shape == (20, 10)
    report = p.personalize(x, progress=False)
    assert report.in_domain_share == 1.0 and "no typicality output" in report.open_set


@pytest.mark.slow
def test_a_cifar_user_with_half_noise_photos_is_judged_on_the_photos(mlperf_resnet8):
    photos = cifar_images(per_class=30, classes=("cat", "ship"), start=200).astype(np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (60,) + photos.shape[1:], dtype=np.uint8)
    x = np.concatenate([photos, noise])
    p = Personalizer(mlperf_resnet8)
    _, typicality = p.observe_typicality(x, progress=False)
    assert np.all(typicality[60:] > 1) and np.mean(typicality[:60] <= 1) >= 0.9  # noise, photos
    in_domain = int(np.sum(typicality <= 1))
    report = p.personalize(x, progress=False)
    assert f"{120 - in_domain} atypical" in report.open_set and report.in_domain_share == in_domain / 120
    assert f"of {in_domain}" in report.class_test  # the class test counts the photos alone
    assert not {"cat", "ship"} & set(report.excluded_classes)
