"""Everything `collect` counts, with every lever on, against numpy formulas of the Keras tensors on real data.

`collect` sums per-sample spatial means (export/activity.py `batch_sums`) and derives the BN moments and the
typicality from per-sample channel means (levers/normalization/graph.py) rather than summing every position;
this checks that each counter is still the formula it always was: activity (fraction of positions > 0),
mean compensation's sums, mean |activation|, the BN input moments about the trained mean, and the typicality,
on a MobileNetV3-like mix (hard-swish and ReLU chains, two spatial sizes, a Dense → BN layer) observed in
uneven batches.
"""

import keras
import numpy as np
import pytest
from keras import layers

from tests import zoo
from tests.realdata import cifar_images
from tflite_fineprune import Personalizer, export_model
from tflite_fineprune.export.normalization import NormLayer, layer_typicality, typicality_limits

GROUP_ENDS = {"stem": "hs_stem", "conv2": "relu2", "dense": "relu_dense"}


def _model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="bn_stem")(x)
    x = layers.Activation("hard_swish", name="hs_stem")(x)  # may be negative: |activation|, the clamped count
    x = layers.Conv2D(12, 3, strides=2, padding="same", use_bias=False, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(16, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(name="bn_dense")(x)  # a BN input without positions
    x = layers.ReLU(name="relu_dense")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return zoo.randomize_batchnorm(keras.Model(inputs, outputs), seed=3)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    model = _model()
    reference = cifar_images(per_class=6, start=0).astype("float32")
    user = cifar_images(per_class=5, start=40).astype("float32")
    path = tmp_path_factory.mktemp("counters") / "mixed.tflite"
    export_model(model, path, reference_data=reference, mean_compensation=True, prior_correction=True)
    p = Personalizer(path, batch_size=7)  # 50 samples: uneven batches
    _, typicality = p.observe_typicality(user, progress=False)
    return model, reference, user, p, typicality


def _values(model, names, x):
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
    return [np.asarray(v, np.float64) for v in probe(x, training=False)]


def _per_sample_means(value):
    return value.reshape(len(value), -1, value.shape[-1]).mean(axis=1)


def test_unit_counters_are_sums_of_per_sample_spatial_means(observed):
    model, _, user, p, _ = observed
    state = p.get_state()
    assert state.samples == len(user)
    hidden = p.metadata.hidden_groups
    assert [g.name for g in hidden] == list(GROUP_ENDS)
    for group, value in zip(hidden, _values(model, GROUP_ENDS.values(), user)):
        part = slice(group.offset, group.offset + group.units)
        np.testing.assert_allclose(state.counts[part], _per_sample_means(value > 0).sum(axis=0), rtol=1e-5,
                                   atol=1e-4, err_msg=group.name)
        np.testing.assert_allclose(state.sums[part], _per_sample_means(value).sum(axis=0), rtol=1e-4, atol=1e-4,
                                   err_msg=group.name)
        np.testing.assert_allclose(state.magnitudes[part], _per_sample_means(np.abs(value)).sum(axis=0),
                                   rtol=1e-4, atol=1e-4, err_msg=group.name)
    assert np.any(_values(model, ["hs_stem"], user)[0] < 0)  # the hard-swish chain really goes negative


def test_bn_moments_and_typicality_are_the_old_formulas(observed):
    model, reference, user, p, typicality = observed
    state = p.get_state()
    norms = [(NormLayer(name, channels, offset), None) for name, channels, offset in p.metadata.normalization_layers]
    assert [n.name for n, _ in norms] == ["bn_stem", "bn2", "bn_dense"]
    inputs = [model.get_layer(n.name).input for n, _ in norms]
    probe = keras.Model(model.inputs[0], inputs)
    trained = np.concatenate([np.asarray(model.get_layer(n.name).moving_mean, np.float64) for n, _ in norms])
    values = [np.asarray(v, np.float64) for v in probe(user, training=False)]
    flat = [v.reshape(-1, v.shape[-1]) for v in values]
    centered = [f - trained[n.offset:n.offset + n.channels] for f, (n, _) in zip(flat, norms)]
    # Σ (x − m₀), Σ (x − m₀)² and the count over samples and positions, as collect accumulated them before.
    np.testing.assert_allclose(state.norm_sums, np.concatenate([c.sum(0) for c in centered]), rtol=1e-4, atol=0.05)
    np.testing.assert_allclose(state.norm_squares, np.concatenate([(c * c).sum(0) for c in centered]), rtol=1e-4)
    np.testing.assert_array_equal(state.norm_count, np.concatenate([np.full(n.channels, len(f), np.float64)
                                                                     for f, (n, _) in zip(flat, norms)]))
    assert state.norm_count[0] == len(user) * 16 * 16 and state.norm_count[-1] == len(user)

    pool = [np.asarray(v, np.float64) for v in probe(reference, training=False)]
    pool_means = np.concatenate([_per_sample_means(v) for v in pool], axis=1)
    pool_flat = [v.reshape(-1, v.shape[-1]) for v in pool]
    mu, var = np.concatenate([f.mean(0) for f in pool_flat]), np.concatenate([f.var(0) for f in pool_flat])
    per_layer, combined = typicality_limits(pool_means, norms, mu, var)
    user_means = np.concatenate([_per_sample_means(v) for v in values], axis=1)
    expected = (layer_typicality(user_means, norms, mu, var) / per_layer).max(axis=1) / combined
    np.testing.assert_allclose(typicality, expected, rtol=2e-3, atol=1e-4)
    assert len(set(np.argmax(layer_typicality(user_means, norms, mu, var) / per_layer, axis=1))) > 1
