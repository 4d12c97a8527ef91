"""Classifier prototypes (T3A) in the graph: supports, the adapted kernel, reset, state; against numpy/Keras.

The model is the MLPerf Tiny ResNet-8 (CIFAR-10) on real CIFAR-10 test images;
the references take Keras' own penultimate features and posteriors.
"""

import dataclasses
import struct
import zlib

import keras
import numpy as np
import pytest

from tests.realdata import cifar_images, require
from tflite_fineprune import FinePruneError, Personalizer, State, export_model
from tflite_fineprune import state as state_format
from tflite_fineprune.levers import prototypes as prototype_lever
from tflite_fineprune.export.prototypes import adapted_kernel, support_sums

CONFIDENCE = 0.7
# The MLPerf .h5 model was saved with a list input; Keras warns when it is called with a plain array.
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs` doesn't match")


@pytest.fixture(scope="module")
def resnet8():
    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    from tflite_fineprune.converters.vision import load_mlperf_resnet8

    return load_mlperf_resnet8()


@pytest.fixture(scope="module")
def exported(resnet8, tmp_path_factory):
    path = tmp_path_factory.mktemp("prototypes") / "resnet8_prototypes.tflite"
    # Without magnitude pruning: these tests are about version-3 files (version 4 adds the magnitudes block).
    export_model(resnet8, path, classifier_prototypes=True, prototype_confidence=CONFIDENCE, prune_outputs=True,
                 magnitude_pruning=False)
    return path


@pytest.fixture(scope="module")
def user():
    # A class-subset user: real images of three classes (from further into the test set than other tests).
    return cifar_images(per_class=15, classes=("cat", "dog", "ship"), start=40)


def _head(model):
    return model.layers[-1]


def _keras_reference(model, x):
    """Keras' penultimate features [N, 64] and class posteriors [N, 10]."""
    features = keras.Model(model.inputs[0], _head(model).input)(x)
    return np.asarray(features), np.asarray(model(x, training=False))


def test_metadata_describes_the_head(exported):
    meta = Personalizer(exported).metadata
    assert meta.classifier_head == ("dense", 64, CONFIDENCE)
    assert {"adapt_classifier", "set_prototypes"} <= set(meta.signatures)


def test_collected_supports_equal_numpy_on_keras_features(resnet8, exported, user):
    p = Personalizer(exported, batch_size=7)  # sums over several batches
    p.observe(user)
    state = p.get_state()
    features, posteriors = _keras_reference(resnet8, user)
    sums, counts = support_sums(features, posteriors, CONFIDENCE)
    assert 0 < (posteriors.max(1) >= CONFIDENCE).sum() < len(user)  # the filter keeps some samples, drops others
    np.testing.assert_allclose(state.proto_counts, counts, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state.proto_sums.reshape(10, 64), sums, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_adapted_kernel_and_outputs_equal_keras_with_the_numpy_kernel(resnet8, exported, user, strength):
    p = Personalizer(exported)
    p.observe(user)
    kernel = p.adapt_classifier(strength)
    features, posteriors = _keras_reference(resnet8, user)
    sums, _ = support_sums(features, posteriors, CONFIDENCE)
    expected = adapted_kernel(np.asarray(_head(resnet8).kernel), sums, strength)
    np.testing.assert_allclose(kernel, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(p.get_state().head_kernel.reshape(64, 10), expected, rtol=1e-4, atol=1e-4)
    # The adapted model = Keras with that kernel (same bias).
    copy = keras.models.clone_model(resnet8)
    copy.set_weights(resnet8.get_weights())
    _head(copy).kernel.assign(expected.astype("float32"))
    adapted = p.predict(user)
    np.testing.assert_allclose(adapted, np.asarray(copy(user, training=False)), atol=1e-4)
    assert np.abs(adapted - posteriors).max() > 1e-2  # the adaptation changed the outputs


def test_strength_zero_gives_back_the_dense_outputs(exported, user):
    p = Personalizer(exported)
    dense = p.predict(user)
    p.observe(user)
    p.adapt_classifier(1.0)
    p.adapt_classifier(0.0)
    np.testing.assert_allclose(p.predict(user), dense, atol=1e-6)


def test_excluded_classes_stay_excluded(exported, user):
    p = Personalizer(exported)
    p.observe(user)
    p.prune_outputs(0.1)
    kept = p.masks["dense"].astype(bool)
    assert 0 < kept.sum() < 10
    p.adapt_classifier(1.0)
    out = p.predict(cifar_images(per_class=2, start=60))  # every class, also the excluded ones
    assert np.all(out[:, ~kept] == 0)
    assert set(out.argmax(1)) <= set(np.flatnonzero(kept))


def test_reset_clears_supports_and_restores_the_kernel(exported, user):
    p = Personalizer(exported)
    dense = p.predict(user)
    trained = p.get_state().head_kernel
    p.observe(user)
    p.adapt_classifier(1.0)
    p.reset(counts=False, masks=True)
    np.testing.assert_array_equal(p.get_state().head_kernel, trained)
    assert p.get_state().proto_counts.any()
    p.adapt_classifier(1.0)
    p.reset(counts=True, masks=False)
    state = p.get_state()
    assert not state.proto_counts.any() and not state.proto_sums.any()
    assert not np.array_equal(state.head_kernel, trained)
    p.reset()
    np.testing.assert_array_equal(p.predict(user), dense)


def test_state_round_trip_version_3(exported, user, tmp_path):
    p = Personalizer(exported)
    p.observe(user)
    p.adapt_classifier(0.5)
    p.observe(user[:5])  # supports grow after the adaptation: the kernel in use must still come back
    p.save_state(tmp_path / "u.state")
    blob = (tmp_path / "u.state").read_bytes()
    assert struct.unpack_from("<HH", blob, 8) == (3, prototype_lever.BLOCK.flag)
    assert len(blob) == 60 + 5 * p.metadata.num_units + 4 * 10 * (1 + 2 * 64)
    fresh = Personalizer(exported)
    fresh.load_state(tmp_path / "u.state")
    np.testing.assert_array_equal(fresh.predict(user), p.predict(user))
    for field in prototype_lever.BLOCK.fields:
        np.testing.assert_array_equal(getattr(fresh.get_state(), field), getattr(p.get_state(), field))
    other = Personalizer(exported)
    other.set_state(p.get_state())
    np.testing.assert_array_equal(other.predict(user), p.predict(user))


@pytest.mark.parametrize("version", [1, 2])
def test_older_state_files_load_with_the_trained_kernel(exported, user, tmp_path, version):
    p = Personalizer(exported)
    dense = p.predict(user)
    p.observe(user)
    p.adapt_classifier(1.0)
    old = dataclasses.replace(p.get_state(), **{f: None for f in prototype_lever.BLOCK.fields})
    blob = bytearray(state_format.encode_state(p.metadata.fingerprint, old))
    assert struct.unpack_from("<H", blob, 8)[0] == 2  # without prototypes writers still write version 2
    struct.pack_into("<H", blob, 8, version)
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    (tmp_path / "old.state").write_bytes(bytes(blob))
    p.load_state(tmp_path / "old.state")
    np.testing.assert_array_equal(p.predict(user), dense)
    assert p.samples == len(user) and not p.get_state().proto_counts.any()


@pytest.mark.parametrize("strength", [1.5, -0.1, float("nan"), "half", None])
def test_bad_strength_is_refused(exported, user, strength):
    p = Personalizer(exported)
    p.observe(user[:4])
    before = p.get_state().head_kernel
    with pytest.raises(FinePruneError, match=r"strength must be a number in \[0, 1\]"):
        p.adapt_classifier(strength)
    np.testing.assert_array_equal(p.get_state().head_kernel, before)


def test_adapt_before_observe_and_without_the_option_are_refused(exports, exported):
    with pytest.raises(FinePruneError, match="observe"):
        Personalizer(exported).adapt_classifier(0.5)
    with pytest.raises(FinePruneError, match="without classifier prototypes"):
        Personalizer(exports.path("dense_only")).adapt_classifier(0.5)


def test_bad_prototype_state_is_refused(exported, user):
    p = Personalizer(exported)
    p.observe(user[:4])
    state = p.get_state()
    with pytest.raises(FinePruneError, match="head_kernel must be 640 finite numbers"):
        p.set_state(dataclasses.replace(state, head_kernel=np.full(640, np.nan, np.float32)))
    with pytest.raises(FinePruneError, match="proto_counts must be ≥ 0"):
        p.set_state(dataclasses.replace(state, proto_counts=-np.ones(10, np.float32)))


def test_a_model_without_a_dense_head_is_refused_at_export(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(10, 1)(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    with pytest.raises(FinePruneError, match="ends in a Dense classifier .* GlobalAveragePooling2D"):
        export_model(model, tmp_path / "x.tflite", classifier_prototypes=True, prune_outputs=False)
    assert not (tmp_path / "x.tflite").exists()


def test_confidence_outside_the_unit_interval_is_refused(exports, tmp_path):
    with pytest.raises(FinePruneError, match=r"prototype_confidence must be a number in \[0, 1\], got 1.5"):
        export_model(exports.model("dense_only"), tmp_path / "x.tflite", classifier_prototypes=True,
                     prototype_confidence=1.5)


@pytest.mark.parametrize("units,classes,features", [(5, 3, 2), (40, 10, 64)])
def test_encode_decode_prototype_vectors(units, classes, features):
    rng = np.random.default_rng(units)
    vectors = {"proto_counts": rng.random(classes).astype(np.float32),
               "proto_sums": rng.random(classes * features).astype(np.float32),
               "head_kernel": rng.standard_normal(features * classes).astype(np.float32)}
    state = State(rng.integers(0, 2, units).astype(np.float32), rng.random(units).astype(np.float32), 3.0, **vectors)
    blob = state_format.encode_state("ab" * 32, state)
    assert len(blob) == 60 + 5 * units + 4 * classes * (1 + 2 * features)
    assert struct.unpack_from("<HH", blob, 8) == (3, prototype_lever.BLOCK.flag)
    decoded = state_format.decode_state(blob, "ab" * 32, units, blocks={"classifier_prototypes": (classes, features)})
    for field, value in vectors.items():
        np.testing.assert_array_equal(getattr(decoded, field), value)
    with pytest.raises(FinePruneError, match="truncated or padded"):  # a model without prototypes
        state_format.decode_state(blob, "ab" * 32, units)
    bad = State(state.masks, state.counts, 3.0, **{**vectors, "proto_counts": -vectors["proto_counts"]})
    with pytest.raises(FinePruneError, match="negative classifier-prototype counts"):
        state_format.decode_state(state_format.encode_state("ab" * 32, bad), "ab" * 32, units,
                                  blocks={"classifier_prototypes": (classes, features)})


def test_a_version_2_file_with_flag_bit_3_is_refused():
    state = State(np.ones(4, np.float32), np.zeros(4, np.float32), 0.0, proto_counts=np.zeros(2, np.float32),
                  proto_sums=np.zeros(2, np.float32), head_kernel=np.zeros(2, np.float32))
    blob = bytearray(state_format.encode_state("ab" * 32, state))
    struct.pack_into("<H", blob, 8, 2)
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    with pytest.raises(FinePruneError, match="unknown flags 0x8"):
        state_format.decode_state(bytes(blob), "ab" * 32, 4, blocks={"classifier_prototypes": (2, 1)})


def test_slim_keeps_the_adapted_kernel(exported, user, tmp_path):
    from tflite_fineprune.slim import slim_model

    p = Personalizer(exported)
    p.observe(user)
    p.prune_outputs(0.1)
    p.adapt_classifier(0.5)
    slim_model(exported, p.get_state(), tmp_path / "slim.tflite")
    np.testing.assert_allclose(Personalizer(tmp_path / "slim.tflite").predict(user), p.predict(user), atol=1e-5)


def test_kotlin_writes_the_same_version_3_bytes(exported, user, tmp_path):
    """The Android codec (android_demo/check.sh encode-state) writes exactly Python's bytes, and they load here."""
    import json

    from tests.converters.test_android_assets import check_sh, needs_maven

    needs_maven()
    p = Personalizer(exported)
    p.observe(user)
    p.adapt_classifier(0.5)
    state = p.get_state()
    body = {"fingerprint": p.metadata.fingerprint, "samples": state.samples,
            "masks": [int(m) for m in state.masks], "counts": [float(c) for c in state.counts],
            **{name: [float(v) for v in getattr(state, name)] for name in prototype_lever.BLOCK.fields}}
    (tmp_path / "in.json").write_text(json.dumps(body))
    result = check_sh("encode-state", tmp_path / "in.json", tmp_path / "kotlin.state")
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "kotlin.state").read_bytes()
    assert written == state_format.encode_state(p.metadata.fingerprint, state)
    fresh = Personalizer(exported)
    fresh.load_state(tmp_path / "kotlin.state")
    np.testing.assert_array_equal(fresh.predict(user), p.predict(user))
    # Without the model the Kotlin tool cannot size C and D, and says so.
    result = check_sh("decode-state", tmp_path / "kotlin.state")
    assert result.returncode == 2 and "need the model" in result.stderr


def test_int8_export_keeps_a_float_adaptable_head(exports, tmp_path):
    path = tmp_path / "dense_int8.tflite"
    export_model(exports.model("dense_only"), path, quantize="int8", classifier_prototypes=True,
                 prototype_confidence=0.0)
    x = cifar_images(per_class=2)
    p = Personalizer(path)
    dense = p.predict(x)
    p.observe(x)
    assert p.get_state().proto_counts.sum() == pytest.approx(len(x), rel=1e-5)  # τ = 0: every sample counts
    p.adapt_classifier(1.0)
    assert not np.allclose(p.predict(x), dense, atol=1e-4)
    p.adapt_classifier(0.0)
    np.testing.assert_allclose(p.predict(x), dense, atol=1e-6)
