"""The vision converter: uint8 pixels in, front-end inside the graph."""

import numpy as np
import pytest

from tests.realdata import cifar_images, require
from tflite_fineprune import FinePruneError, Personalizer


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    from converters.vision import export_mlperf

    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    path = tmp_path_factory.mktemp("r8") / "resnet8.tflite"
    export_mlperf(path, prune_outputs=True)
    return path


def test_resnet8_takes_uint8_and_matches_keras(resnet8):
    from converters.vision import load_mlperf_resnet8

    pixels = cifar_images(5).astype(np.uint8)
    personalizer = Personalizer(resnet8)
    assert personalizer.metadata.input_dtype == "uint8"
    got = personalizer.predict(pixels)
    expected = np.asarray(load_mlperf_resnet8()(pixels.astype(np.float32), training=False))
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert np.mean(got.argmax(1) == np.repeat(np.arange(10), 5)) >= 0.6
    with pytest.raises(FinePruneError, match="dtype float32; expected uint8"):
        personalizer.predict(pixels.astype(np.float32))


def test_keras_app_offline_with_resize(tmp_path):
    """`weights=auto` never downloads; a 64x64 uint8 input is resized in-graph to the model's 96x96."""
    from converters.vision import KERAS_APPS, ImageFrontEnd, export_keras_app, keras_app, with_frontend

    report, used = export_keras_app("MobileNetV2", tmp_path / "mnv2.tflite", weights="none", size=96)
    assert used is None and report.metadata.input_dtype == "uint8"
    model, _ = keras_app("MobileNetV2", "none", 96)
    wrapped = with_frontend(model, input_size=(64, 64), scale=KERAS_APPS["MobileNetV2"][1][0],
                            offset=KERAS_APPS["MobileNetV2"][1][1])
    from tflite_fineprune import export_model

    small = export_model(wrapped, tmp_path / "small.tflite")
    pixels = cifar_images(1, size=64).astype(np.uint8)
    got = Personalizer(small.path).predict(pixels)
    np.testing.assert_allclose(got, np.asarray(wrapped(pixels)), atol=1e-4)
    assert isinstance(wrapped.get_layer("image_frontend"), ImageFrontEnd)
    with pytest.raises(FinePruneError, match="unknown keras application"):
        keras_app("VGG99")
