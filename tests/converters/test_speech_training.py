"""The speech training recipe on real clips: speaker split, augmentation, early stopping, BN recalibration, width."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.realdata import require
from tflite_fineprune import FinePruneError, Personalizer


def fsdd_clips(speakers, digits=("0", "1"), per_speaker=4):
    """(pcm [N, 16000], labels, stems) of real FSDD clips, resampled to 16 kHz."""
    from tflite_fineprune.datafiles import fit_audio, load_audio

    root = require("fsdd/recordings")
    paths = [p for d in digits for s in speakers for p in sorted(root.glob(f"{d}_{s}_*.wav"))[:per_speaker]]
    pcm = np.stack([fit_audio(p, *load_audio(p), (16000,), 16000) for p in paths])
    return pcm, np.array([digits.index(p.stem.split("_")[0]) for p in paths]), [p.stem for p in paths]


def test_speaker_ids_from_speech_commands_and_fsdd_names():
    from tflite_fineprune.converters.speakers import speaker_of, speaker_regex

    regex = speaker_regex()
    speech = require("speech_commands_v0.02_test")
    yes = sorted((speech / "yes").glob("*.wav"))[0]
    unknown = sorted((speech / "_unknown_").glob("*.wav"))[0]
    assert speaker_of(yes.stem, regex) == yes.stem.split("_")[0]
    assert speaker_of(unknown.stem, regex) == unknown.stem.split("_")[1]
    assert speaker_of(sorted(require("fsdd/recordings").glob("3_theo_*.wav"))[0].stem, regex) == "theo"
    assert speaker_of("recording-017", regex) is None
    assert speaker_of("alice-017", speaker_regex(r"(?P<speaker>[a-z]+)-\d+")) == "alice"
    with pytest.raises(FinePruneError, match="not a valid regular expression"):
        speaker_regex("(")


def test_validation_speakers_are_disjoint_and_held_out_apart():
    from tflite_fineprune.converters.speakers import speaker_of, speaker_regex, split_clips

    stems = [p.stem for p in sorted(require("fsdd/recordings").glob("*.wav"))]
    speakers = [speaker_of(s, speaker_regex()) for s in stems]
    split = split_clips(speakers, 0.2, held_out=("theo",), seed=3)
    names = np.array(speakers)
    train, val, held = set(names[split.train]), set(names[split.validation]), set(names[split.held_out])
    assert held == {"theo"} and not (train & val) and not (held & (train | val))
    assert val == set(split.validation_speakers) and len(val) >= 1
    assert len(split.train) + len(split.validation) + len(split.held_out) == len(stems)
    assert "speaker-disjoint" in split.description
    with pytest.raises(FinePruneError, match="nobody not found"):
        split_clips(speakers, held_out=("nobody",))


def test_split_falls_back_to_random_without_speaker_ids():
    from tflite_fineprune.converters.speakers import speaker_of, speaker_regex, split_clips

    speakers = [speaker_of(f"take{i}", speaker_regex()) for i in range(50)]
    split = split_clips(speakers, 0.2, seed=0)
    assert "random validation split" in split.description and split.validation_speakers == ()
    assert len(split.validation) == 10 and not set(split.train) & set(split.validation)


def test_augmentation_is_identity_at_inference_and_export_matches(tmp_path):
    from tflite_fineprune.converters.speech import export_pcm_model
    from tflite_fineprune.converters.speech_training import TrainingRecipe, keyword_model

    pcm, _, _ = fsdd_clips(("jackson",), per_speaker=3)
    model, _ = keyword_model(2, TrainingRecipe(width=0.25, augment=True))
    augmented = np.asarray(model(pcm, training=True))  # (this also moves the BN statistics, so it comes first)
    inference = np.asarray(model(pcm, training=False))
    assert np.max(np.abs(augmented - inference)) > 1e-3  # augmentation is live
    path = tmp_path / "aug.tflite"
    export_pcm_model(model, path, ("0", "1"))
    np.testing.assert_allclose(Personalizer(path).predict(pcm), inference, atol=1e-5)
    for name in ("time_shift", "noise", "spec_augment"):
        layer = model.get_layer(name)
        x = pcm if name != "spec_augment" else np.asarray(model.get_layer("mfcc_frontend")(pcm))
        np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_width_multiplies_channels():
    from tflite_fineprune.converters.speech_training import TrainingRecipe, keyword_model

    for width, channels in ((1, 64), (2, 128), (0.5, 32)):
        _, classifier = keyword_model(10, TrainingRecipe(width=width))
        assert classifier.get_layer("stem_conv").filters == channels
        assert all(classifier.get_layer(f"pw{i}").filters == channels for i in range(4))
    with pytest.raises(FinePruneError, match="--width must be positive"):
        keyword_model(10, TrainingRecipe(width=0))


def test_early_stopping_keeps_best_weights_and_recalibrates_batchnorm():
    import keras

    from tflite_fineprune.converters.speech_training import (

        TrainingRecipe, mfcc_features, predict, recalibrate_batchnorm, train)

    pcm, labels, _ = fsdd_clips(("jackson", "nicolas", "theo"), per_speaker=6)
    theo = np.r_[12:18, 30:36]  # clips are ordered digit, speaker: 6 each
    train_index, val_index = np.setdiff1d(np.arange(36), theo), theo
    result = train(pcm, labels, 2, train_index, val_index, TrainingRecipe(max_epochs=5, patience=2, width=0.25),
                   log=lambda line: None)
    history_best = result.best_validation_accuracy
    features = mfcc_features(pcm)
    kept = float(np.mean(predict(result.classifier, features[val_index]).argmax(1) == labels[val_index]))
    assert kept == history_best  # the kept weights are the best epoch's, not the last one's
    assert result.epochs_run <= 5 and result.epochs_run - result.best_epoch <= 2
    # Recalibrated: every BN standardizes its inference-mode input on the training clips.
    recalibrate_batchnorm(result.classifier, features[train_index])
    x = features[train_index]
    for layer in result.classifier.layers[1:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(layer.moving_variance.numpy(), x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
        x = np.asarray(layer(x, training=False))


def test_cli_train_prints_held_out_report(tmp_path, capsys):
    from tflite_fineprune.converters.speech import main

    fsdd = require("fsdd/recordings")
    data = tmp_path / "data"
    for digit in ("0", "1", "2"):
        (data / digit).mkdir(parents=True)
        for speaker in ("jackson", "nicolas", "theo", "yweweler"):
            for path in sorted(fsdd.glob(f"{digit}_{speaker}_*.wav"))[:4]:
                os.symlink(path, data / digit / path.name)
    out = tmp_path / "digits.tflite"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-m", "tflite_fineprune.converters.speech", "train", str(data), "-o",
                             str(out),
                             "--epochs", "2", "--width", "0.5", "--holdout-speakers", "theo"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "speaker-disjoint validation: 1 of 3 speakers (12 clips)" in result.stdout
    assert "trained 2 epochs (at most 2)" in result.stdout
    report = result.stdout[result.stdout.index("held-out report:"):]
    assert "held-out speakers theo: accuracy" in report and "on 12 clips" in report
    assert report.count("(4 clips)") == 6  # three digits for validation, three for the held-out speaker
    personalizer = Personalizer(out)
    assert personalizer.labels == ["0", "1", "2"] and len(personalizer.metadata.hidden_groups) == 9
    assert personalizer.metadata.output_group is not None  # exports make classes prunable by default
    assert personalizer.metadata.normalization_layers  # the training clips are the BN reference pool
    assert main(["train", str(data), "-o", str(out), "--holdout-speakers", "nobody"]) == 2
    assert "held-out speaker(s) nobody not found" in capsys.readouterr().err
    assert main(["train", str(data), "-o", str(out), "--learning-rate", "0"]) == 2
    assert "--learning-rate must be positive, got 0.0" in capsys.readouterr().err
    assert main(["train", str(data), "-o", str(out), "--reuse-outputs"]) == 2
    assert "--reuse-outputs needs --init-from" in capsys.readouterr().err


def test_init_from_mlperf_savedmodel_and_keras_file_transfers_weights(tmp_path):
    import keras

    from tflite_fineprune.converters.kws_model import KWS_LABELS
    from tflite_fineprune.converters.speech_training import (
        TrainingRecipe, keyword_model, pretrained_classifier, train, transfer_weights)

    mlperf = pretrained_classifier(require("mlperf_tiny/keyword_spotting/kws_ref_model"))
    _, classifier = keyword_model(3, TrainingRecipe(seed=1))
    log = []
    transfer_weights(mlperf, classifier, log.append)
    for layer in classifier.layers:
        if layer.weights and layer.name != "classes":
            for mine, theirs in zip(layer.get_weights(), mlperf.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    assert classifier.get_layer("classes").kernel.shape == (64, 3) and "'classes' (64, 3) is new" in log[0]
    _, known = keyword_model(2, TrainingRecipe())
    transfer_weights(mlperf, known, log.append, KWS_LABELS, ("yes", "down"))
    pretrained_kernel, pretrained_bias = mlperf.get_layer("classes").get_weights()
    np.testing.assert_array_equal(known.get_layer("classes").kernel.numpy(), pretrained_kernel[:, [9, 0]])
    np.testing.assert_array_equal(known.get_layer("classes").bias.numpy(), pretrained_bias[[9, 0]])
    _, reordered = keyword_model(12, TrainingRecipe())  # same shapes: still mapped by name, not copied in place
    transfer_weights(mlperf, reordered, log.append, KWS_LABELS, KWS_LABELS[::-1])
    np.testing.assert_array_equal(reordered.get_layer("classes").bias.numpy(), pretrained_bias[::-1])
    with pytest.raises(FinePruneError, match="these are not: zero"):
        transfer_weights(mlperf, known, log.append, KWS_LABELS, ("yes", "zero"))
    _, wide = keyword_model(3, TrainingRecipe(width=2))
    with pytest.raises(FinePruneError, match="does not fit layer 'stem_conv'"):
        transfer_weights(mlperf, wide)
    with pytest.raises(FinePruneError, match="expects an MLPerf Tiny KWS SavedModel folder or a .keras file"):
        pretrained_classifier(tmp_path / "missing.h5")

    # A model saved like `train --keras` saves it seeds the next training run, which starts from its weights.
    first, first_classifier = keyword_model(2, TrainingRecipe(width=0.25, seed=7))
    saved = tmp_path / "first.keras"
    first.save(saved)
    np.testing.assert_array_equal(pretrained_classifier(saved).get_layer("pw3").kernel.numpy(),
                                  first_classifier.get_layer("pw3").kernel.numpy())
    pcm, labels, _ = fsdd_clips(("jackson", "theo"), per_speaker=3)
    log = []
    again = train(pcm, labels, 2, np.arange(0, 12, 2), np.arange(1, 12, 2),
                  TrainingRecipe(max_epochs=1, patience=1, width=0.25, learning_rate=1e-9, init_from=str(saved)),
                  log=log.append)
    assert any(line.startswith("init: weights from") for line in log)
    with pytest.raises(FinePruneError, match="--reuse-outputs needs --init-from to name an MLPerf"):
        train(pcm, labels, 2, np.arange(0, 12, 2), np.arange(1, 12, 2),
              TrainingRecipe(max_epochs=1, init_from=str(saved), reuse_outputs=True), log=log.append)
    # With a vanishing learning rate the kept weights are the transferred ones (the classes layer too: same shape).
    for name in ("stem_conv", "pw3", "classes"):
        np.testing.assert_allclose(again.classifier.get_layer(name).kernel.numpy(),
                                   first_classifier.get_layer(name).kernel.numpy(), atol=1e-6)
    assert isinstance(again.model, keras.Model)


@pytest.mark.slow
def test_pruned_export_of_trained_model_matches_keras_with_the_same_masks(tmp_path):
    """The trained model's `prune` masks in the .tflite act exactly as zeroing those units after their ReLU in Keras.

    Guards the finding of docs/training.md: the collapse of the pruned speech model is the model's, not the export's.
    """
    import keras

    from tflite_fineprune.converters.speech import export_pcm_model
    from tflite_fineprune.converters.speech_training import (
        TrainingRecipe, keyword_model, mfcc_features, predict, recalibrate_batchnorm)

    pcm, _, _ = fsdd_clips(("jackson", "theo"), digits=("0", "1", "2"), per_speaker=4)
    model, classifier = keyword_model(3, TrainingRecipe(width=0.25, seed=3))
    features = mfcc_features(pcm)
    recalibrate_batchnorm(classifier, features)  # realistic BN statistics (MFCC scale), as training leaves them
    path = tmp_path / "kws.tflite"
    export_pcm_model(model, path, ("0", "1", "2"), reference_data=pcm)
    personalizer = Personalizer(path)
    personalizer.observe(pcm[::2])
    personalizer.prune(0.3)
    state = personalizer.get_state()
    masks = {g.name: state.masks[g.offset:g.offset + g.units] for g in personalizer.metadata.hidden_groups}
    assert sorted(masks) == sorted(["stem_conv"] + [f"{kind}{i}" for i in range(4) for kind in ("dw", "pw")])
    assert all(0 < m.sum() < len(m) for m in masks.values())
    x = features[1::2]
    for layer in classifier.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = np.asarray(layer(x, training=False))
        if layer.name.endswith("_relu"):
            x = x * masks[layer.name[:-len("_relu")].replace("stem", "stem_conv")]
    assert np.max(np.abs(x - predict(classifier, features[1::2]))) > 1e-2  # the masks matter
    np.testing.assert_allclose(personalizer.predict(pcm[1::2]), x, atol=1e-5)
