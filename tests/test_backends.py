"""The same exported file behaves the same under LiteRT and tflite-runtime 2.14.

Masks are bit-identical; outputs and counters agree to float rounding (the two
ship different XNNPACK builds: seen up to 8e-7 on outputs, 2e-6 on counters).

tflite-runtime 2.14 needs numpy<2, so it lives in its own venv (created by
.ci/run); FINEPRUNE_TFLITE_RUNTIME_PYTHON names its interpreter.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.realdata import real_inputs
from tflite_fineprune import Personalizer

WORKER = pathlib.Path(__file__).with_name("tflite_runtime_worker.py")
REPO = WORKER.parents[1]


def runtime_python():
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set (.ci/run creates the tflite-runtime 2.14 venv)")
    return python


def run_worker(path, tmp_path, adapt, evaluation, sparsity):
    """Replay under tflite-runtime 2.14 what the test did under LiteRT (tflite_runtime_worker.py); its outputs.

    The LiteRT state must be saved as tmp_path/litert.state first.
    """
    np.savez(tmp_path / "inputs.npz", adapt=adapt, eval=evaluation, sparsity=sparsity)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([runtime_python(), str(WORKER), str(path), str(tmp_path / "inputs.npz"),
                             str(tmp_path / "out.npz"), str(tmp_path / "litert.state"),
                             str(tmp_path / "runtime.state")],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "out.npz")


@pytest.mark.parametrize("name", ["plain_cnn", "dense_only", "conv1d_audio", "residual_separable", "mobilenet_v2"])
def test_litert_and_tflite_runtime_agree(exports, tmp_path, name):
    runtime_python()  # skips early without the tflite-runtime venv
    model = exports.model(name)
    path = exports.path(name)
    x = real_inputs(name, count=40)
    adapt, evaluation, sparsity = x[::2], x[1::2], 0.3

    litert = Personalizer(path, backend="litert")
    dense = litert.predict(evaluation)
    litert.observe(adapt)
    litert.prune(sparsity)
    litert.save_state(tmp_path / "litert.state")
    pruned = litert.predict(evaluation)
    state = litert.get_state()

    other = run_worker(path, tmp_path, adapt, evaluation, sparsity)

    assert not other["tensorflow_imported"]
    # Fidelity under tflite-runtime too.
    assert np.max(np.abs(other["dense"] - np.asarray(model(evaluation, training=False)))) <= 1e-4
    np.testing.assert_allclose(other["dense"], dense, atol=1e-5)
    np.testing.assert_array_equal(other["masks"], state.masks)
    # Two interpreters' kernels may round a value within ~1e-7 of zero to opposite signs: allow a couple of
    # (sample, position) pairs to flip per unit, i.e. 2 / positions of that unit's tensor.
    positions = np.concatenate([np.full(g.units, g.positions, np.float32) for g in litert.groups])
    np.testing.assert_array_less(np.abs(other["counts"] - state.counts), 1e-5 + 2.0 / positions)
    assert float(other["samples"]) == state.samples
    np.testing.assert_allclose(other["pruned"], pruned, atol=1e-5)
    np.testing.assert_allclose(other["from_litert_state"], pruned, atol=1e-5)
    # And the state written by tflite-runtime loads under LiteRT.
    fresh = Personalizer(path, backend="litert")
    fresh.load_state(tmp_path / "runtime.state")
    np.testing.assert_array_equal(fresh.get_state().masks, state.masks)


def test_runtime_never_imports_tensorflow(exports, tmp_path):
    """Personalize with TensorFlow made unimportable."""
    path = exports.path("dense_only")
    np.save(tmp_path / "x.npy", real_inputs("dense_only"))
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name == "keras":
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from tflite_fineprune import Personalizer
p = Personalizer({str(path)!r})
x = np.load({str(tmp_path / 'x.npy')!r})
p.observe(x); p.prune(0.5); p.save_state({str(tmp_path / 's.state')!r})
q = Personalizer({str(path)!r}); q.load_state({str(tmp_path / 's.state')!r})
assert (q.predict(x) == p.predict(x)).all()
assert not any(m.startswith("tensorflow") for m in sys.modules), "tensorflow imported"
print("ok", p.backend)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok litert" in result.stdout


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tensorflow_backend_runs_the_same_file(exports):
    """The deprecated tf.lite interpreter remains a fallback; it must agree too."""
    pytest.importorskip("tensorflow")
    x = real_inputs("residual_separable")
    litert = Personalizer(exports.path("residual_separable"), backend="litert")
    tf_lite = Personalizer(exports.path("residual_separable"), backend="tensorflow")
    assert tf_lite.backend == "tensorflow"
    np.testing.assert_allclose(tf_lite.predict(x), litert.predict(x), atol=1e-5)
    for p in (litert, tf_lite):
        p.observe(x)
        p.prune(0.25)
    np.testing.assert_array_equal(tf_lite.get_state().masks, litert.get_state().masks)


def test_progress_bar_on_long_runs(exports, capsys):
    p = Personalizer(exports.path("dense_only"), batch_size=1)
    p.observe(real_inputs("dense_only", count=30))  # 30 batches: long enough for a bar
    assert "observe" in capsys.readouterr().err
    p.predict(real_inputs("dense_only", count=30))  # predict shows none unless asked
    assert "predict" not in capsys.readouterr().err
