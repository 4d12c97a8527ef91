"""The install paths of setup.cfg's extras.

The fast tests read the declared requirements: `.[tflite-runtime]` must bring a numpy that tflite-runtime 2.14
works with (it was built against numpy 1.x and fails with a SystemError under numpy 2), and `.[notebooks]` what
docs/notebooks.md's `jupyter execute` line needs. The slow test installs `.[tflite-runtime]` into a fresh venv
(no system site-packages; needs the package index, so it skips offline) and personalizes an exported model with
it. Two more install `.[tflite-runtime]` and `.[slim]`: one after the other (pip then brings numpy 2; the command
names the one fix, which is run, and slim works beside tflite-runtime) and in one command.
"""

import configparser
import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

REPO = pathlib.Path(__file__).resolve().parents[1]


def extras():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    section = config["options.extras_require"]
    return {name: [Requirement(line) for line in section[name].splitlines() if line.strip()
                   and not line.strip().startswith("#")] for name in section}


def requirement(extra, name):
    found = [r for r in extras()[extra] if r.name == name]
    assert found, f"the {extra} extra does not require {name}"
    return found[0]


def test_tflite_runtime_extra_keeps_numpy_below_2():
    numpy = requirement("tflite-runtime", "numpy")
    assert "1.26.4" in numpy.specifier and "2.0.0" not in numpy.specifier and "2.4.6" not in numpy.specifier


def test_no_other_extra_requires_numpy_2():
    for extra, requirements in extras().items():
        for r in requirements:
            if r.name == "numpy":
                assert "1.26.4" in r.specifier, f"{extra}: {r} excludes the numpy tflite-runtime 2.14 needs"


def test_notebooks_extra_brings_jupyter_execute_and_a_kernel():
    names = {r.name for r in extras()["notebooks"]}
    assert {"nbclient", "ipykernel", "jupyter-core"} <= names  # nbclient installs jupyter-execute
    assert "tflite-fineprune[demo]" in {str(r) for r in extras()["notebooks"]}


def index_reachable(python):
    result = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", "platformdirs"],
                            capture_output=True, text=True, timeout=120)
    return result.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="tflite-runtime 2.14 has wheels for Python 3.8-3.11 only")
def test_fresh_venv_with_the_tflite_runtime_extra_personalizes(exports, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    if not index_reachable(python):
        pytest.skip("the package index is not reachable")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", f"{REPO}[tflite-runtime]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    model = exports.path("plain_cnn")
    probe = ("import json, sys, numpy as np, tflite_fineprune as fp; p = fp.Personalizer(sys.argv[1]); "
             "x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype('float32'); "
             "p.observe(x); p.prune(0.3); "
             "print(json.dumps({'backend': p.backend, 'numpy': np.__version__, 'pruned': float(p.sparsity().units), "
             "'tensorflow': 'tensorflow' in sys.modules, 'package': fp.__file__}))")
    result = subprocess.run([python, "-c", probe, str(model)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "tflite_runtime" and report["numpy"].startswith("1.")
    assert report["pruned"] > 0 and not report["tensorflow"] and str(venv) in report["package"]


def _venv(tmp_path, name):
    venv = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    if not index_reachable(python):
        pytest.skip("the package index is not reachable")
    return python


def _pip(python, *args):
    result = subprocess.run([python, "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]


def _run(python, cwd, *args):
    return subprocess.run([python, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


# Personalize under tflite-runtime, slim (LiteRT's schema), run the slim file under tflite-runtime.
SLIM_UNDER_TFLITE_RUNTIME = (
    "import json, sys, numpy as np, tflite_fineprune as fp; "
    "p = fp.Personalizer(sys.argv[1], backend='tflite_runtime'); "
    "x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype('float32'); p.observe(x); p.prune(0.3); "
    "report = fp.slim_model(sys.argv[1], p.get_state(), sys.argv[2]); "
    "slim = fp.Personalizer(sys.argv[2], backend='tflite_runtime'); "
    "print(json.dumps({'numpy': np.__version__, 'backend': slim.backend, 'slim_bytes': report.slim_bytes, "
    "'same': bool(np.allclose(slim.predict(x), p.predict(x), rtol=1e-4, atol=1e-3))}))")


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="tflite-runtime 2.14 has wheels for Python 3.8-3.11 only")
def test_tflite_runtime_then_slim_says_the_one_fix_and_the_fix_works(exports, tmp_path):
    python = _venv(tmp_path, "venv")
    _pip(python, f"{REPO}[tflite-runtime]")
    _pip(python, f"{REPO}[slim]")  # as the install table's rows read one after the other
    model = exports.path("plain_cnn")
    numpy = _run(python, tmp_path, "-c", "import numpy; print(numpy.__version__)").stdout.strip()
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run([python, "-c", f"import numpy as np; np.save({str(data / 'x.npy')!r}, np.zeros((4, 32, 32, 3), "
                    "'float32'))"], check=True, timeout=120)
    result = _run(python, tmp_path, "-m", "tflite_fineprune", "personalize", model, "--data", data,
                  "--state", tmp_path / "user.state", "--backend", "tflite_runtime")
    if numpy.startswith("1."):
        pytest.skip("pip kept numpy 1 this time: nothing to fix")  # the resolver may change; the pair then works
    said = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("INFO:")]
    assert result.returncode == 2 and len(said) == 1 and "_ARRAY_API" not in result.stderr, result.stderr[-3000:]
    assert f"numpy {numpy}" in said[0] and "fix: pip install " in said[0], said
    fix = shlex.split(said[0].split("fix: ", 1)[1])
    assert fix[:2] == ["pip", "install"]
    _pip(python, *fix[2:])  # the one command the error names
    result = _run(python, tmp_path, "-c", SLIM_UNDER_TFLITE_RUNTIME, model, tmp_path / "slim.tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["numpy"].startswith("1.") and report["backend"] == "tflite_runtime" and report["same"]


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="tflite-runtime 2.14 has wheels for Python 3.8-3.11 only")
def test_tflite_runtime_and_slim_in_one_command_slim_under_tflite_runtime(exports, tmp_path):
    python = _venv(tmp_path, "venv")
    _pip(python, f"{REPO}[tflite-runtime,slim]")
    result = _run(python, tmp_path, "-c", SLIM_UNDER_TFLITE_RUNTIME, exports.path("plain_cnn"), tmp_path / "s.tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["numpy"].startswith("1.") and report["backend"] == "tflite_runtime" and report["same"]
