"""int8 exports: the whole on-device routine on the quantized file, TF-free, and clear errors."""

import os

import keras
import numpy as np
import pytest

from tests.cli import run_cli
from tests.realdata import real_inputs
from tests.test_backends import run_worker, runtime_python
from tflite_fineprune import Personalizer, export_model
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.export.quantize import DYNAMIC_RANGE, int8_weight_bytes

NAME = "plain_cnn"


@pytest.fixture(scope="module")
def calibration():
    x = real_inputs(NAME, count=80)
    return x[:40], x[40:]  # the export checks itself on one half, the tests use the other


@pytest.fixture(scope="module")
def int8_file(exports, tmp_path_factory, calibration):
    path = tmp_path_factory.mktemp("int8") / "full.tflite"
    report = export_model(exports.model(NAME), path, quantize="int8", representative_data=calibration[0],
                          prune_outputs=False)  # as the float file it is compared with
    return path, report


def test_int8_export_is_smaller_and_agrees_with_float(exports, int8_file, calibration):
    path, report = int8_file
    assert report.metadata.quantization == DYNAMIC_RANGE
    assert report.max_abs_error is not None and report.max_abs_error < 0.1  # on the representative samples
    float_path = exports.path(NAME)
    assert os.path.getsize(path) < 0.75 * os.path.getsize(float_path)  # a small model: graph bytes weigh in
    assert int8_weight_bytes(open(path, "rb").read()) > 0
    held_out = calibration[1]
    quantized = Personalizer(path).predict(held_out)
    reference = Personalizer(float_path).predict(held_out)
    assert np.mean(quantized.argmax(1) == reference.argmax(1)) >= 0.9
    assert np.max(np.abs(quantized - reference)) < 0.5 * np.abs(reference).max()


def test_routine_on_the_int8_file_behaves_as_on_the_float_one(exports, int8_file, calibration, tmp_path):
    path, _ = int8_file
    x = calibration[1]
    runs = {}
    for name, model in (("float", exports.path(NAME)), ("int8", path)):
        personalizer = Personalizer(model)
        personalizer.observe(x)
        activity = np.concatenate([personalizer.activity[g.name] for g in personalizer.groups])
        personalizer.prune(0.3)
        runs[name] = (personalizer, activity)
    (float_p, float_activity), (int8_p, int8_activity) = runs["float"], runs["int8"]
    # Activity is a fraction in [0, 1]; int8 rounding only moves values near 0 across it.
    assert np.max(np.abs(int8_activity - float_activity)) < 0.15
    assert np.corrcoef(int8_activity, float_activity)[0, 1] > 0.95
    state = int8_p.get_state()
    assert state.masks.sum() < len(state.masks)  # the prune happened
    # Pruned units stay silent when the pruned int8 model observes again.
    int8_p.reset(counts=True, masks=False)
    int8_p.observe(x)
    pruned = state.masks < 0.5
    again = np.concatenate([int8_p.activity[g.name] for g in int8_p.groups])
    assert np.all(again[pruned] == 0)
    # State round trip, and the float file's state is refused with the usual error.
    int8_p.save_state(tmp_path / "int8.state")
    fresh = Personalizer(path)
    fresh.load_state(tmp_path / "int8.state")
    np.testing.assert_array_equal(fresh.get_state().masks, state.masks)
    np.testing.assert_allclose(fresh.predict(x), int8_p.predict(x), atol=1e-6)
    float_p.save_state(tmp_path / "float.state")
    with pytest.raises(FinePruneError, match="belongs to another model"):
        fresh.load_state(tmp_path / "float.state")
    np.testing.assert_array_equal(fresh.get_state().masks, state.masks)  # unchanged by the refusal


def test_int8_file_runs_under_tflite_runtime_without_tensorflow(int8_file, calibration, tmp_path):
    runtime_python()  # skips early without the tflite-runtime venv
    path, _ = int8_file
    x = calibration[1]
    litert = Personalizer(path, backend="litert")
    dense = litert.predict(x)
    litert.observe(x)
    litert.prune(0.3)
    litert.save_state(tmp_path / "litert.state")
    pruned = litert.predict(x)
    other = run_worker(path, tmp_path, x, x, 0.3)
    assert not other["tensorflow_imported"]
    # Integer kernels of two runtimes may round one step apart.
    assert np.mean(other["dense"].argmax(1) == dense.argmax(1)) >= 0.95
    np.testing.assert_array_equal(other["masks"], litert.get_state().masks)
    assert np.mean(other["from_litert_state"].argmax(1) == pruned.argmax(1)) >= 0.95


def test_dynamic_range_without_representative_data(exports, tmp_path, calibration):
    path = tmp_path / "dynamic.tflite"
    report = export_model(exports.model(NAME), path, quantize="int8")
    assert report.metadata.quantization == DYNAMIC_RANGE
    assert report.metadata.fingerprint != Personalizer(exports.path(NAME)).metadata.fingerprint
    personalizer = Personalizer(path)
    reference = Personalizer(exports.path(NAME)).predict(calibration[1])
    assert np.mean(personalizer.predict(calibration[1]).argmax(1) == reference.argmax(1)) >= 0.9
    personalizer.observe(calibration[1])
    personalizer.prune(0.3)
    assert personalizer.get_state().masks.sum() < personalizer.metadata.num_units


@pytest.mark.parametrize("data, message", [
    (np.zeros((4, 16, 16, 3), np.float32), r"shape \(4, 16, 16, 3\); expected \(N, 32, 32, 3\)"),
    (np.zeros((0, 32, 32, 3), np.float32), "empty"),
    (np.full((2, 32, 32, 3), np.nan, np.float32), "NaN"),
    (np.array(["a", "b"]), "shape"),
])
def test_bad_representative_data(exports, tmp_path, data, message):
    with pytest.raises(FinePruneError, match=message):
        export_model(exports.model(NAME), tmp_path / "bad.tflite", quantize="int8", representative_data=data)
    assert not (tmp_path / "bad.tflite").exists()


def test_bad_quantize_options(exports, tmp_path):
    x = real_inputs(NAME, count=2)
    with pytest.raises(FinePruneError, match="unknown quantize 'int4'"):
        export_model(exports.model(NAME), tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(FinePruneError, match="only used with quantize='int8'"):
        export_model(exports.model(NAME), tmp_path / "m.tflite", representative_data=x)


def test_model_without_quantizable_weights_is_refused(tmp_path):
    keras.utils.set_random_seed(0)
    tiny = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])
    with pytest.raises(FinePruneError, match="cannot be quantized"):
        export_model(tiny, tmp_path / "tiny.tflite", quantize="int8")
    assert not (tmp_path / "tiny.tflite").exists()


def test_cli_export_quantize(exports, tmp_path, calibration):
    keras_path = tmp_path / "cnn.keras"
    exports.model(NAME).save(keras_path)
    np.save(tmp_path / "samples.npy", calibration[0][:8])
    out = tmp_path / "cnn-int8.tflite"
    result = run_cli("export", keras_path, "-o", out, "--quantize", "int8", "--representative-data",
                     tmp_path / "samples.npy")
    assert result.returncode == 0, result.stderr
    assert "int8-dynamic-range" in result.stdout
    assert Personalizer(out).metadata.quantization == DYNAMIC_RANGE
    bad = run_cli("export", keras_path, "-o", tmp_path / "bad.tflite", "--quantize", "int8",
                  "--representative-data", tmp_path / "samples.txt")
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if "error:" in line]  # TensorFlow logs to stderr too
    assert len(errors) == 1 and "expects a .npy file" in errors[0]


def test_int8_dense_layers_run_under_tflite_runtime(exports, tmp_path):
    # Large dense kernels get one scale each: per-unit scales need FULLY_CONNECTED version 12, which
    # tflite-runtime 2.14 refuses ("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'").
    runtime_python()  # skips early without the tflite-runtime venv
    x = real_inputs("dense_only", count=24)
    path = tmp_path / "dense-int8.tflite"
    export_model(exports.model("dense_only"), path, quantize="int8")
    litert = Personalizer(path, backend="litert")
    dense = litert.predict(x)
    litert.observe(x)
    litert.prune(0.3)
    litert.save_state(tmp_path / "litert.state")
    other = run_worker(path, tmp_path, x, x, 0.3)
    assert np.mean(other["dense"].argmax(1) == dense.argmax(1)) >= 0.95
    np.testing.assert_array_equal(other["masks"], litert.get_state().masks)
