"""`slim`: a user's model with the pruned units physically removed, written without TensorFlow.

Fidelity is measured against the masked export on real inputs; the slim file
must also be smaller, run under tflite-runtime 2.14, and refuse personalization.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.cli import error_lines, run_cli
from tests.realdata import real_inputs, speech_test_split
from tflite_fineprune import FinePruneError, Personalizer
from tflite_fineprune.metadata import read_model_metadata
from tflite_fineprune.slim import slim_model

REPO = pathlib.Path(__file__).resolve().parents[1]
RELATIVE = 1e-5
ZOO = ["plain_cnn", "dense_only", "conv1d_audio", "residual_separable", "mobilenet_v2", "nested_backbone"]
SPARSITIES = [0.0, 0.3, 0.7, 0.999]  # 0.999 keeps exactly one unit per layer


def personalized(path, x, sparsity, min_class_fraction=None):
    p = Personalizer(path, backend="litert")
    p.observe(x)
    p.prune(sparsity)
    if min_class_fraction is not None and p.metadata.output_group is not None:
        p.prune_outputs(min_class_fraction)
    return p


def assert_same_outputs(masked, slim, what):
    """≤ 1e-5 relative to the output scale; excluded classes (logit −1e9) must stay excluded."""
    excluded = masked <= -1e8
    np.testing.assert_array_equal(slim <= -1e8, excluded, err_msg=what)
    kept_masked, kept_slim = masked[~excluded], slim[~excluded]
    scale = max(float(np.max(np.abs(kept_masked))), 1e-6)
    error = float(np.max(np.abs(kept_masked - kept_slim))) / scale
    assert error <= RELATIVE, f"{what}: relative error {error:.2e}"
    np.testing.assert_array_equal(np.argmax(slim, axis=-1), np.argmax(masked, axis=-1), err_msg=what)


def check_slim(path, x, sparsity, tmp_path, min_class_fraction=0.05):
    adapt, evaluation = x[::2], x[1::2]
    p = personalized(path, adapt, sparsity, min_class_fraction)
    out = tmp_path / f"slim-{sparsity}.tflite"
    report = p.slim(out)
    slim = Personalizer(out, backend="litert")
    assert_same_outputs(p.predict(evaluation), slim.predict(evaluation), f"{path.name} at {sparsity}")
    if sparsity == 0:
        assert report.slim_bytes < report.dense_bytes  # the personalization signatures and variables are gone
    return p, report


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("name", ZOO)
def test_zoo_slim_matches_masked(exports, tmp_path, name, sparsity):
    path = exports.path(name, prune_outputs=True)
    p, report = check_slim(path, real_inputs(name, count=40), sparsity, tmp_path)
    kept = sum(len(v) for v in report.kept_units.values())
    assert kept == p.metadata.num_units - p.sparsity().pruned_units
    if sparsity >= 0.7:
        assert report.slim_bytes < 0.8 * report.dense_bytes
        # every hidden group that is pruned is physically removed, except where removal would be inexact
        for name_, reason in report.still_masked.items():
            assert "padded" in reason or "mixes" in reason, (name_, reason)


def test_keep_one_unit_removes_all_others(exports, tmp_path):
    path = exports.path("dense_only", prune_outputs=True)
    p, report = check_slim(path, real_inputs("dense_only", count=40), 0.999, tmp_path)
    assert report.kept_units["hidden_1"] and len(report.kept_units["hidden_1"]) == 1
    assert report.still_masked == {}
    # 3072 inputs x 1 unit + 1 x 1 + 1 x 10 weights and biases instead of ~200k: a few kB.
    assert report.slim_bytes < 30_000 < report.dense_bytes


def test_mean_compensation_and_prior_correction(exports, tmp_path):
    """Pruned units' fill values are folded into the next layer; the class weights become constants."""
    path = exports.path("plain_cnn", mean_compensation=True, prior_correction=True)
    x = real_inputs("plain_cnn", count=40)
    p = Personalizer(path, backend="litert")
    p.correct_priors(x[::2], iterations=2)
    p.prune(0.5)
    out = tmp_path / "comp.tflite"
    report = p.slim(out)
    assert_same_outputs(p.predict(x[1::2]), Personalizer(out).predict(x[1::2]), "compensated")
    assert report.slim_bytes < report.dense_bytes


@pytest.fixture(scope="module")
def kws(mlperf_kws):
    return mlperf_kws


@pytest.fixture(scope="module")
def resnet8(mlperf_resnet8):
    return mlperf_resnet8


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.999])
def test_mlperf_ds_cnn_with_mfcc_frontend(kws, tmp_path, sparsity):
    clips, _ = speech_test_split(step=60)
    check_slim(kws, clips, sparsity, tmp_path)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.999])
def test_mlperf_resnet8_uint8(resnet8, tmp_path, sparsity):
    from tests.realdata import cifar_images

    pixels = cifar_images(6).astype(np.uint8)
    check_slim(resnet8, pixels, sparsity, tmp_path)


def test_shifted_batchnorm_statistics_are_kept(resnet8, tmp_path):
    from tests.realdata import cifar_images

    pixels = cifar_images(8, classes=("cat", "dog", "frog"), start=300).astype(np.uint8)
    user = Personalizer(resnet8)
    user.observe(pixels)
    user.adapt_normalization(0.3)
    user.prune(0.3)
    assert user.metadata.normalization_layers
    user.slim(tmp_path / "user.tflite")
    assert_same_outputs(user.predict(pixels), Personalizer(tmp_path / "user.tflite").predict(pixels), "BN shift")
    user.reset()
    assert np.max(np.abs(user.predict(pixels) - Personalizer(tmp_path / "user.tflite").predict(pixels))) > 1e-4


# -- bad input -------------------------------------------------------------------


def test_a_state_without_statistics_or_kernel_slims_with_the_trained_ones(tmp_path):
    """A version-1 state (no BatchNorm statistics) or one from before prototypes (no kernel) means the trained
    values: slim reads them from the model's variable initializers, without an interpreter, and writes what
    the runtime's own set_state → slim gives, byte for byte."""
    from tests import zoo
    from tflite_fineprune import State, export_model

    x = real_inputs("plain_cnn", count=24)
    path = tmp_path / "bn-head.tflite"
    export_model(zoo.plain_cnn(), path, reference_data=x[:8], classifier_prototypes=True, prune_outputs=False)
    user = Personalizer(path)
    user.observe(x[::2])
    user.adapt_normalization(1.0)
    user.adapt_classifier(0.5)
    user.prune(0.4)
    full = user.get_state()
    bare = State(masks=full.masks, counts=full.counts, samples=full.samples)
    assert user.metadata.normalization_layers and user.metadata.classifier_head
    report = slim_model(path, bare, tmp_path / "bare.tflite")
    user.set_state(bare)  # the runtime fills in the trained statistics and kernel
    assert user.get_state().norm_mean is not None and not np.array_equal(user.get_state().norm_mean, full.norm_mean)
    user.slim(tmp_path / "runtime.tflite")
    assert (tmp_path / "bare.tflite").read_bytes() == (tmp_path / "runtime.tflite").read_bytes()
    assert report.still_masked == {}
    assert_same_outputs(user.predict(x[1::2]), Personalizer(tmp_path / "bare.tflite").predict(x[1::2]), "trained")


def test_state_from_another_model_is_refused(exports, tmp_path):
    other = personalized(exports.path("dense_only", prune_outputs=True), real_inputs("dense_only", count=10), 0.5)
    other.save_state(tmp_path / "other.state")
    with pytest.raises(FinePruneError, match="belongs to another model"):
        slim_model(exports.path("plain_cnn", prune_outputs=True), tmp_path / "other.state", tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


def test_slim_file_refuses_personalization_and_reslimming(exports, tmp_path):
    path = exports.path("dense_only", prune_outputs=True)
    x = real_inputs("dense_only", count=10)
    p = personalized(path, x, 0.5)
    p.save_state(tmp_path / "user.state")
    out = tmp_path / "user.tflite"
    p.slim(out)
    meta = read_model_metadata(out.read_bytes())
    assert meta.slim["from_fingerprint"] == p.metadata.fingerprint and meta.signatures == ("infer",)
    slim = Personalizer(out)
    for call in (lambda: slim.observe(x), lambda: slim.prune(0.5), slim.get_state,
                 lambda: slim.load_state(tmp_path / "user.state")):
        with pytest.raises(FinePruneError, match="slim model .* can only predict"):
            call()
    with pytest.raises(FinePruneError, match="already slim"):
        slim_model(out, tmp_path / "user.state", tmp_path / "again.tflite")


def test_plain_tflite_is_refused(tmp_path):
    plain = REPO / "tests" / "test_slim.py"
    with pytest.raises(FinePruneError, match="not a TFLite file"):
        slim_model(plain, tmp_path / "none.state", tmp_path / "out.tflite")


def test_cli_slim_inspect_and_personalize_errors(exports, tmp_path):
    path = exports.path("plain_cnn", prune_outputs=True)
    p = personalized(path, real_inputs("plain_cnn", count=20), 0.5)
    p.save_state(tmp_path / "user.state")

    result = run_cli("slim", path, "--state", tmp_path / "user.state", "-o", tmp_path / "user.tflite")
    assert result.returncode == 0, result.stderr
    assert "bytes" in result.stdout and (tmp_path / "user.tflite").exists()
    result = run_cli("inspect", tmp_path / "user.tflite")
    assert result.returncode == 0 and "slim: pruned units removed" in result.stdout
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", real_inputs("plain_cnn", count=4))
    result = run_cli("personalize", tmp_path / "user.tflite", "--data", data, "--sparsity", 0.5,
                     "--state", tmp_path / "new.state")
    assert result.returncode == 2 and "slim model" in result.stderr and len(error_lines(result.stderr)) == 1
    other = personalized(exports.path("dense_only", prune_outputs=True), real_inputs("dense_only", count=10), 0.5)
    other.save_state(tmp_path / "other.state")
    result = run_cli("slim", path, "--state", tmp_path / "other.state", "-o", tmp_path / "x.tflite")
    assert result.returncode == 2 and "belongs to another model" in result.stderr


# -- without TensorFlow ------------------------------------------------------------

BLOCK_TENSORFLOW = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name == "keras":
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
"""


def test_slim_runs_without_tensorflow(exports, tmp_path):
    path = exports.path("residual_separable", prune_outputs=True)
    p = personalized(path, real_inputs("residual_separable", count=20), 0.5)
    p.save_state(tmp_path / "user.state")
    script = BLOCK_TENSORFLOW + f"""
from tflite_fineprune.slim import slim_model
report = slim_model({str(path)!r}, {str(tmp_path / 'user.state')!r}, {str(tmp_path / 'user.tflite')!r})
assert not any(m.startswith("tensorflow") for m in sys.modules), "tensorflow imported"
print("ok", report.slim_bytes)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


def test_slim_file_runs_under_tflite_runtime(exports, tmp_path):
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set (.ci/run creates the tflite-runtime 2.14 venv)")
    path = exports.path("mobilenet_v2", prune_outputs=True)
    x = real_inputs("mobilenet_v2", count=20)
    p = personalized(path, x[::2], 0.5)
    p.slim(tmp_path / "user.tflite")
    np.save(tmp_path / "x.npy", x[1::2])
    script = f"""
import sys, numpy as np
from tflite_fineprune import Personalizer
p = Personalizer({str(tmp_path / 'user.tflite')!r}, backend="tflite_runtime")
np.save({str(tmp_path / 'y.npy')!r}, p.predict(np.load({str(tmp_path / 'x.npy')!r})))
assert "tensorflow" not in sys.modules
try:
    from tflite_fineprune.slim import slim_model
    slim_model({str(path)!r}, None, "unused.tflite")
except Exception as exc:
    print("slim:", type(exc).__name__, exc)
"""
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_outputs(p.predict(x[1::2]), np.load(tmp_path / "y.npy"), "tflite-runtime")
    # Slimming itself needs LiteRT's schema module: the error says what to install, numpy kept below 2.
    assert 'pip install "numpy<2" ai-edge-litert' in result.stdout
