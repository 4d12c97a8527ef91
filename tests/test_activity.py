"""`observe` must count activity exactly as a numpy reference over Keras outputs."""

import numpy as np
import pytest

from tests import zoo
from tflite_fineprune import Personalizer


@pytest.mark.parametrize("name", ["plain_cnn", "dense_only", "conv1d_audio", "residual_separable", "mobilenet_v2"])
def test_activity_matches_keras_reference(exports, inputs, name):
    model = exports.model(name)
    x = inputs(name, count=30)
    personalizer = Personalizer(exports.path(name))
    personalizer.observe(x[:11])
    personalizer.observe(x[11:], batch_size=5)  # counters accumulate across calls and batch sizes
    assert personalizer.samples == len(x)
    hidden = [g.name for g in personalizer.groups if g.role == "hidden"]
    reference = zoo.keras_activity(model, hidden, x)
    activity = personalizer.activity
    assert set(activity) == set(hidden)
    for layer in hidden:
        # A value within float rounding of 0 may land on either side in TFLite vs Keras.
        np.testing.assert_allclose(activity[layer], reference[layer], atol=2e-3, err_msg=layer)


def test_reset_clears_counters_but_keeps_masks(exports, inputs):
    x = inputs("plain_cnn")
    personalizer = Personalizer(exports.path("plain_cnn"))
    personalizer.observe(x)
    personalizer.prune(0.25)
    masks = personalizer.masks
    personalizer.reset(counts=True, masks=False)
    assert personalizer.samples == 0
    assert all(not v.any() for v in personalizer.activity.values())
    assert all(np.array_equal(masks[k], v) for k, v in personalizer.masks.items())
    personalizer.reset(counts=False, masks=True)
    assert all(v.all() for v in personalizer.masks.values())


def test_pruned_units_are_inactive_after_reobserving(exports, inputs):
    x = inputs("residual_separable", count=40)
    personalizer = Personalizer(exports.path("residual_separable"))
    personalizer.observe(x[:20])
    personalizer.prune(0.4)
    personalizer.reset(counts=True, masks=False)
    personalizer.observe(x[20:])
    for layer, mask in personalizer.masks.items():
        assert np.all(personalizer.activity[layer][mask == 0] == 0.0)


def test_chains_that_can_go_negative_count_only_positive_values(tmp_path):
    """Leaky and linear chain ends take the clamped count; ReLU ends the cheaper one. Both match numpy."""
    import keras
    from keras import layers

    from tflite_fineprune import export_model

    keras.utils.set_random_seed(11)
    inp = keras.Input((10, 10, 3))
    leaky = layers.ReLU(negative_slope=0.2, name="leaky_relu")(layers.Conv2D(6, 3, name="leaky")(inp))
    linear = layers.Conv2D(5, 1, name="linear")(leaky)
    relu = layers.Conv2D(4, 3, activation="relu", name="relu")(linear)
    model = keras.Model(inp, layers.Dense(3)(layers.Flatten()(relu)))
    path = tmp_path / "chains.tflite"
    export_model(model, path, prune_outputs=False)
    x = np.random.default_rng(3).normal(0, 2, (9, 10, 10, 3)).astype(np.float32)
    personalizer = Personalizer(path)
    personalizer.observe(x)
    probe = keras.Model(inp, [leaky, linear, relu])
    for name, value in zip(["leaky", "linear", "relu"], probe(x)):
        reference = (np.asarray(value) > 0).mean(axis=(0, 1, 2))
        assert 0 < reference.mean() < 1, name  # the test needs both signs
        np.testing.assert_allclose(personalizer.activity[name], reference, atol=2e-3, err_msg=name)
