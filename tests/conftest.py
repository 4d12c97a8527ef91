import os
import pathlib
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

# A test needs TensorFlow when it exports a model: through these fixtures, or when its module imports Keras,
# TensorFlow, the converters, the export side or the Keras zoo anywhere (a helper of the module may export). Those
# tests get the `tf` mark, and `pytest -m "not tf"` does not even collect such modules: it runs the rest without
# importing TensorFlow.
TENSORFLOW_FIXTURES = {"exports", "mlperf_kws", "mlperf_resnet8"}
TENSORFLOW_SOURCE = re.compile(
    r"^\s*(?:import|from)\s+(?:keras|tensorflow|tflite_fineprune\.converters|converters|tflite_fineprune\.export|"
    r"tests\.zoo|tests\.kws_reference|tests\.references)\b|"
    r"^\s*from\s+tests\s+import\s+.*\b(?:zoo|kws_reference|references)\b|\bexport_model\b|"
    r"\bexport_mlperf\b|\"export\",|-m\",\s*\"(?:tflite_fineprune\.)?converters",
    re.M)


def _uses_tensorflow(path):
    return TENSORFLOW_SOURCE.search(pathlib.Path(path).read_text(errors="replace")) is not None


def pytest_ignore_collect(collection_path, config):
    if (collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and re.search(r"\bnot\s+tf\b", config.option.markexpr or "") and _uses_tensorflow(collection_path)):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    modules = {}
    for item in items:
        path = str(item.path)
        if path not in modules:
            modules[path] = _uses_tensorflow(path)
        if modules[path] or TENSORFLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tf)


class ExportCache:
    """Each zoo model is built and exported once per test session."""

    def __init__(self, directory):
        self.directory = directory
        self.models = {}
        self.paths = {}

    def model(self, name):
        if name not in self.models:
            from tests import zoo

            self.models[name] = zoo.ZOO[name]()
        return self.models[name]

    def path(self, name, **options):
        # export_model now makes classes prunable by default; the tests written before keep a hidden-only layout.
        options.setdefault("prune_outputs", False)
        key = (name, tuple(sorted(options.items())))
        if key not in self.paths:
            from tflite_fineprune import export_model

            suffix = "-".join(f"{k}-{v}" for k, v in sorted(options.items()))
            path = self.directory / f"{name}{'-' + suffix if suffix else ''}.tflite"
            export_model(self.model(name), path, **options)
            self.paths[key] = path
        return self.paths[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return ExportCache(tmp_path_factory.mktemp("exports"))


@pytest.fixture(params=["synthetic", "real"])
def inputs(request):
    """`inputs(name, count, seed)`: inputs for a zoo model, synthetic (runs anywhere) or real (skips without data).

    A different `seed` gives different samples: another synthetic draw, or real files further on.
    """
    from tests.realdata import cifar_images, real_inputs
    from tests.synthetic import synthetic_inputs

    def make(name, count=24, seed=0):
        if request.param == "synthetic":
            return synthetic_inputs(name, count, seed)
        if seed:
            if name == "conv1d_audio":
                from tests.realdata import speech_clips
                return speech_clips(count, words=("left", "right", "on", "off"))
            return cifar_images(max(1, count // 10), size=96 if name == "mobilenet_v2" else None, start=100 * seed)
        return real_inputs(name, count)

    return make


@pytest.fixture(scope="session")
def mlperf_kws(tmp_path_factory):
    """The MLPerf Tiny DS-CNN exported by the speech converter with its defaults (MFCC front-end inside)."""
    from tflite_fineprune.converters.speech import export_mlperf
    from tests.realdata import require

    require("mlperf_tiny/keyword_spotting/kws_ref_model")
    path = tmp_path_factory.mktemp("mlperf") / "kws.tflite"
    export_mlperf(path)
    return path


@pytest.fixture(scope="session")
def mlperf_resnet8(tmp_path_factory):
    """The MLPerf Tiny ResNet-8 exported by the vision converter with its defaults (uint8 front-end inside)."""
    from tflite_fineprune.converters.vision import export_mlperf
    from tests.realdata import require

    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    path = tmp_path_factory.mktemp("mlperf") / "resnet8.tflite"
    export_mlperf(path)
    return path
