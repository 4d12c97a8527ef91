"""The vision converter: uint8 pixels in, front-end inside the graph."""

import numpy as np
import pytest

from tests.references import em_priors
from tests.realdata import cifar_images, require
from tflite_fineprune import FinePruneError, Personalizer


@pytest.fixture(scope="module")
def resnet8(mlperf_resnet8):
    return mlperf_resnet8


def test_resnet8_takes_uint8_and_matches_keras(resnet8):
    from tflite_fineprune.converters.vision import load_mlperf_resnet8

    pixels = cifar_images(5).astype(np.uint8)
    personalizer = Personalizer(resnet8)
    assert personalizer.metadata.input_dtype == "uint8"
    got = personalizer.predict(pixels)
    expected = np.asarray(load_mlperf_resnet8()(pixels.astype(np.float32), training=False))
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert np.mean(got.argmax(1) == np.repeat(np.arange(10), 5)) >= 0.6
    with pytest.raises(FinePruneError, match="dtype float32; expected uint8"):
        personalizer.predict(pixels.astype(np.float32))


@pytest.mark.slow
def test_keras_app_offline_with_resize(tmp_path):
    """`weights=auto` never downloads; a 64x64 uint8 input is resized in-graph to the model's 96x96."""
    from tflite_fineprune.converters.vision import KERAS_APPS, ImageFrontEnd, export_keras_app, keras_app, with_frontend

    report, used = export_keras_app("MobileNetV2", tmp_path / "mnv2.tflite", weights="none", size=96)
    assert used is None and report.metadata.input_dtype == "uint8"
    model, _ = keras_app("MobileNetV2", "none", 96)
    wrapped = with_frontend(model, input_size=(64, 64), **KERAS_APPS["MobileNetV2"][1])
    from tflite_fineprune import export_model

    small = export_model(wrapped, tmp_path / "small.tflite")
    pixels = cifar_images(1, size=64).astype(np.uint8)
    got = Personalizer(small.path).predict(pixels)
    np.testing.assert_allclose(got, np.asarray(wrapped(pixels)), atol=1e-4)
    assert isinstance(wrapped.get_layer("image_frontend"), ImageFrontEnd)
    with pytest.raises(FinePruneError, match="unknown keras application"):
        keras_app("VGG99")


def test_in_graph_prior_correction_matches_numpy_em(tmp_path):
    """EM class priors estimated inside the graph equal a numpy EM over the same outputs."""
    from tflite_fineprune.converters.vision import export_mlperf

    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    report = export_mlperf(tmp_path / "r8em.tflite", prior_correction=True)
    personalizer = Personalizer(report.path)
    assert personalizer.metadata.prior_correction and "update_priors" in personalizer.metadata.signatures
    adapt = cifar_images(40, classes=("cat", "ship")).astype(np.uint8)
    held_out = cifar_images(20, classes=("cat", "ship"), start=100).astype(np.uint8)
    dense_adapt, dense_held = personalizer.predict(adapt), personalizer.predict(held_out)
    prior = personalizer.correct_priors(adapt, iterations=10)
    expected = em_priors(dense_adapt, 10)
    np.testing.assert_allclose(prior, expected, atol=1e-4)
    reweighted = dense_held * expected
    np.testing.assert_allclose(personalizer.predict(held_out), reweighted / reweighted.sum(1, keepdims=True),
                               atol=1e-4)
    truth = np.repeat([3, 8], 20)
    assert np.mean(personalizer.predict(held_out).argmax(1) == truth) >= np.mean(dense_held.argmax(1) == truth)
    path = tmp_path / "em.state"
    personalizer.save_state(path)
    fresh = Personalizer(report.path)
    fresh.load_state(path)
    np.testing.assert_allclose(fresh.predict(held_out), personalizer.predict(held_out), atol=1e-6)
    personalizer.reset()
    np.testing.assert_allclose(personalizer.predict(held_out), dense_held, atol=1e-6)
    with pytest.raises(FinePruneError, match="without prior_correction"):
        Personalizer(export_mlperf(tmp_path / "plain.tflite").path).correct_priors(adapt)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_frontend_matches_keras_preprocessing(name):
    """The in-graph scaling equals keras.applications' own preprocess_input on real photos."""
    import keras

    from tflite_fineprune.converters.vision import KERAS_APPS, ImageFrontEnd

    pixels = cifar_images(2, size=32)
    module, options = KERAS_APPS[name]
    layer = ImageFrontEnd((32, 32), **options)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(layer(pixels.astype(np.uint8))), expected, atol=1e-4)
