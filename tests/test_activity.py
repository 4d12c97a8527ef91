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
    hidden = [g.name for g in personalizer.units if g.role == "hidden"]
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
