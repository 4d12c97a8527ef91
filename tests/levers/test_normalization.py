"""Relative AdaBN in the graph: moments, the adapted model, reset, state; against numpy/Keras references."""

import keras
import numpy as np
import pytest

from tests import zoo
from tests.realdata import cifar_images
from tflite_fineprune import FinePruneError, Personalizer, export_model
from tflite_fineprune.export.normalization import adapted_statistics
from tflite_fineprune.levers import normalization as normalization_lever

BN_LAYERS = ("bn_a", "bn_c")


@pytest.fixture(scope="module")
def model():
    return zoo.plain_cnn()


@pytest.fixture(scope="module")
def data():
    # Reference pool and user data are real, disjoint CIFAR-10 images of different classes.
    reference = cifar_images(per_class=6, start=0).astype("float32")
    user = cifar_images(per_class=12, classes=("cat", "dog"), start=20).astype("float32")
    return reference, user


@pytest.fixture(scope="module")
def exported(model, data, tmp_path_factory):
    path = tmp_path_factory.mktemp("norm") / "plain_cnn_norm.tflite"
    export_model(model, path, reference_data=data[0])
    return path


def _bn_inputs(model, x):
    probe = keras.Model(model.inputs[0], [model.get_layer(n).input for n in BN_LAYERS])
    return [np.asarray(v, np.float64).reshape(-1, v.shape[-1]) for v in probe(x, training=False)]


def _moments(model, x):
    values = _bn_inputs(model, x)
    return np.concatenate([v.mean(0) for v in values]), np.concatenate([v.var(0) for v in values])


def _trained(model):
    return (np.concatenate([np.asarray(model.get_layer(n).moving_mean) for n in BN_LAYERS]),
            np.concatenate([np.asarray(model.get_layer(n).moving_variance) for n in BN_LAYERS]))


def test_metadata_lists_the_bn_layers(exported):
    meta = Personalizer(exported).metadata
    assert [n[0] for n in meta.normalization_layers] == list(BN_LAYERS)
    assert "adapt_normalization" in meta.signatures


def test_collected_moments_equal_numpy_moments_of_keras_bn_inputs(model, exported, data):
    _, user = data
    p = Personalizer(exported, batch_size=7)
    p.observe(user)
    state = p.get_state()
    trained_mean, _ = _trained(model)
    mean, var = _moments(model, user)
    got_mean = trained_mean + state.norm_sums / state.norm_count
    got_var = state.norm_squares / state.norm_count - (state.norm_sums / state.norm_count) ** 2
    np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_var, var, rtol=2e-3, atol=1e-4)
    np.testing.assert_array_equal(state.norm_count[:16], len(user) * 32 * 32)


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_adapted_model_equals_keras_copy_with_formula_statistics(model, exported, data, strength):
    reference, user = data
    p = Personalizer(exported)
    p.observe(user)
    p.adapt_normalization(strength)
    trained_mean, trained_var = _trained(model)
    ref_mean, ref_var = _moments(model, reference)
    user_mean, user_var = _moments(model, user)
    mean, var = adapted_statistics(trained_mean, trained_var, ref_mean, ref_var, user_mean, user_var, strength)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    offset = 0
    for name in BN_LAYERS:
        bn = copy.get_layer(name)
        n = bn.moving_mean.shape[0]
        bn.moving_mean.assign(mean[offset:offset + n].astype("float32"))
        bn.moving_variance.assign(var[offset:offset + n].astype("float32"))
        offset += n
    expected = np.asarray(copy(user, training=False))
    np.testing.assert_allclose(p.predict(user), expected, rtol=1e-3, atol=2e-3)
    assert not np.allclose(p.predict(user), np.asarray(model(user, training=False)), atol=1e-2)


def test_reset_restores_trained_statistics(model, exported, data):
    _, user = data
    p = Personalizer(exported)
    dense = p.predict(user)
    p.observe(user)
    p.adapt_normalization(1.0)
    p.reset()
    np.testing.assert_array_equal(p.predict(user), dense)
    assert not p.get_state().norm_count.any()


def test_state_round_trip_v2(exported, data, tmp_path):
    _, user = data
    p = Personalizer(exported)
    p.observe(user)
    p.adapt_normalization(0.3)
    p.save_state(tmp_path / "u.state")
    fresh = Personalizer(exported)
    fresh.load_state(tmp_path / "u.state")
    np.testing.assert_array_equal(fresh.predict(user), p.predict(user))
    np.testing.assert_array_equal(fresh.get_state().norm_sums, p.get_state().norm_sums)


def test_strength_and_missing_signature_errors(exports, exported, data):
    p = Personalizer(exported)
    with pytest.raises(FinePruneError, match="observe"):
        p.adapt_normalization(0.3)
    p.observe(data[1][:4])
    with pytest.raises(FinePruneError, match=r"strength must be a number in \[0, 1\]"):
        p.adapt_normalization(1.5)
    with pytest.raises(FinePruneError, match="without normalization statistics"):
        Personalizer(exports.path("plain_cnn")).adapt_normalization(0.3)


def test_reference_data_of_wrong_shape_is_refused(model, tmp_path):
    with pytest.raises(FinePruneError, match=r"reference_data must be .* shape \(32, 32, 3\)"):
        export_model(model, tmp_path / "x.tflite", reference_data=np.zeros((4, 8, 8, 3), np.float32))


def test_version_1_state_file_loads_into_a_normalization_model(exported, data, tmp_path):
    """A state written before normalization existed: masks and counters load, BN statistics are the trained ones."""
    import dataclasses
    import struct
    import zlib

    from tflite_fineprune import state as state_format

    _, user = data
    p = Personalizer(exported)
    dense = p.predict(user)
    p.observe(user)
    p.adapt_normalization(1.0)
    v1_state = dataclasses.replace(p.get_state(), magnitudes=None,  # version 1 predates both blocks
                                   **{f: None for f in normalization_lever.BLOCK.fields})
    blob = bytearray(state_format.encode_state(p.metadata.fingerprint, v1_state))
    struct.pack_into("<H", blob, 8, 1)
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    (tmp_path / "v1.state").write_bytes(bytes(blob))
    p.load_state(tmp_path / "v1.state")
    np.testing.assert_array_equal(p.predict(user), dense)
    assert p.samples == len(user)


@pytest.mark.parametrize("units,channels", [(5, 3), (40, 17)])
def test_encode_decode_normalization_vectors(units, channels):
    from tflite_fineprune import State
    from tflite_fineprune import state as state_format

    rng = np.random.default_rng(units)
    vectors = {f: rng.random(channels).astype(np.float32) + 0.1 for f in normalization_lever.BLOCK.fields}
    state = State(rng.integers(0, 2, units).astype(np.float32), rng.random(units).astype(np.float32), 3.0, **vectors)
    blob = state_format.encode_state("ab" * 32, state)
    assert len(blob) == 56 + 5 * units + 20 * channels + 4 and blob[10] == normalization_lever.BLOCK.flag
    decoded = state_format.decode_state(blob, "ab" * 32, units, blocks={"normalization_shift": (channels,)})
    for field, value in vectors.items():
        np.testing.assert_array_equal(getattr(decoded, field), value)
    with pytest.raises(FinePruneError, match="truncated or padded"):  # a model without normalization layers
        state_format.decode_state(blob, "ab" * 32, units)
