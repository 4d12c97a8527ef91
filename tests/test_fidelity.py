"""All masks on, the exported model must match Keras on real inputs (≤ 1e-4)."""

import numpy as np
import pytest

from tflite_fineprune import Personalizer

TOLERANCE = 1e-4
MODELS = ["plain_cnn", "dense_only", "conv1d_audio", "residual_separable", "mobilenet_v2", "nested_backbone"]


@pytest.mark.parametrize("name", MODELS)
def test_masks_on_match_keras(exports, inputs, name):
    model = exports.model(name)
    x = inputs(name)
    expected = np.asarray(model(x, training=False))
    personalizer = Personalizer(exports.path(name), backend="litert")
    got = personalizer.predict(x, batch_size=7)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    # Collecting must not change the outputs either.
    assert np.max(np.abs(personalizer.observe(x) - expected)) <= TOLERANCE


def test_mobilenet_batchnorm_is_not_trivial(exports):
    import keras

    model = exports.model("mobilenet_v2")
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(np.std(np.asarray(layer.moving_mean)) > 0.1 for layer in bn)
