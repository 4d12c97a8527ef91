"""The open-set guard: out-of-vocabulary samples are no evidence about which of the model's words a user says."""

import numpy as np
import pytest

from tests.realdata import read_clip, require
from tflite_fineprune import Personalizer, open_set
from tflite_fineprune.recipe import AutoRule, class_test

LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
SPEAKER = "0cb74144"  # a Speech Commands test-split speaker with 49 clips


def test_catch_all_classes_come_from_the_labels():
    assert open_set.out_of_vocabulary_classes(LABELS) == (10, 11)
    assert open_set.out_of_vocabulary_classes(("cat", "dog")) == ()


def test_check_counts_the_samples_outside_the_catch_all_classes():
    predicted = np.array([0, 11, 11, 3, 10, 9, 11])
    guard, mask = open_set.check(predicted, LABELS, min_samples=3, min_share=0.1)
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
    off, mask = open_set.check([11] * 40, LABELS, 10, -1.0)
    assert off.enough and mask.all() and not off.enabled and "off" in str(off)
    vision, mask = open_set.check([0, 1, 1], ("cat", "dog"), 1, 0.1)
    assert mask.all() and not vision.filtered and "no catch-all class" in str(vision)


def test_in_domain_samples_keep_arrays_lists_of_samples_and_lists_of_batches():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    mask = np.array([True, False, True, True, False, False])
    np.testing.assert_array_equal(open_set.in_domain_samples(x, mask), x[mask])
    samples = open_set.in_domain_samples(list(x), mask)
    assert isinstance(samples, list) and len(samples) == 3
    np.testing.assert_array_equal(open_set.in_domain_samples([x[:4], x[4:]], mask), x[mask])


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
    assert "left out of the class test" in report.open_set
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
