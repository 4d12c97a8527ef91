"""The numpy / tflite-runtime pairing, checked before tflite-runtime is loaded (interpreters.tflite_runtime_mismatch).

`pip install ".[tflite-runtime]"` then `pip install ".[slim]"` leaves tflite-runtime 2.14 (built against numpy 1)
beside numpy 2. These tests build that environment without the package index: the test venv (numpy 2, LiteRT)
plus the real tflite-runtime 2.14 of the `.ci/run` venv (FINEPRUNE_TFLITE_RUNTIME_PYTHON) on the path, and
check that the pairing check agrees with what the real interpreter does there and in both real venvs. The
fresh-venv install itself is in tests/test_install.py (slow).
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.cli import error_lines
from tflite_fineprune.interpreters import tflite_runtime_mismatch

REPO = pathlib.Path(__file__).resolve().parents[1]


def runtime_site_packages():
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set (.ci/run creates the tflite-runtime 2.14 venv)")
    found = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    return pathlib.Path(found)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import keras
    from keras import layers

    from tflite_fineprune import export_model

    path = tmp_path_factory.mktemp("pairing") / "dense.tflite"
    export_model(keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(3)]), path)
    return path


@pytest.fixture(scope="module")
def mismatched_path(tmp_path_factory):
    """A folder that, put on PYTHONPATH, adds tflite-runtime 2.14 (package and dist-info) to this numpy-2 venv."""
    site = runtime_site_packages()
    folder = tmp_path_factory.mktemp("tflite-runtime-beside-numpy-2")
    entries = [p for p in site.iterdir() if p.name == "tflite_runtime" or p.name.startswith("tflite_runtime-")]
    assert len(entries) == 2, entries
    for entry in entries:
        (folder / entry.name).symlink_to(entry)
    return folder


def run_python(code, *args, extra_path=None):
    path = ([str(extra_path)] if extra_path else []) + [str(REPO)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=env)


def test_the_installed_pair_here_is_what_the_check_says():
    from importlib import metadata

    try:
        runtime = metadata.version("tflite-runtime")
    except metadata.PackageNotFoundError:
        runtime = None
    broken = runtime is not None and runtime.startswith("2.14") and np.__version__.split(".")[0] != "1"
    assert (tflite_runtime_mismatch() is not None) == broken


def test_the_tflite_runtime_venv_is_a_working_pair(model):
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set")
    code = ("import sys, numpy; from tflite_fineprune.interpreters import tflite_runtime_mismatch as m; "
            "from tflite_fineprune import Personalizer; p = Personalizer(sys.argv[1], backend='tflite_runtime'); "
            "print(numpy.__version__, m(), p.backend)")
    result = subprocess.run([python, "-c", code, str(model)], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0].startswith("1.") and result.stdout.split()[1:] == ["None", "tflite_runtime"]


def test_numpy_2_beside_tflite_runtime_2_14_is_found_before_the_interpreter_breaks(mismatched_path, model):
    result = run_python("""
        import json, sys, warnings
        from tflite_fineprune import FinePruneError, Personalizer
        from tflite_fineprune.interpreters import tflite_runtime_mismatch
        said = {"mismatch": tflite_runtime_mismatch()}
        try:
            Personalizer(sys.argv[1], backend="tflite_runtime")
        except FinePruneError as exc:
            said["refused"] = str(exc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            said["backends"] = [Personalizer(sys.argv[1]).backend for _ in range(2)]
        said["notes"] = [str(w.message) for w in caught if type(w.message).__name__ == "BackendFallbackWarning"]
        try:  # what the check spares the user: the interpreter itself under numpy 2
            from tflite_runtime.interpreter import Interpreter
            Interpreter(model_path=sys.argv[1])
            said["interpreter"] = "ran"
        except BaseException as exc:
            said["interpreter"] = type(exc).__name__
        print(json.dumps(said))
    """, model, extra_path=mismatched_path)
    assert result.returncode == 0, result.stderr[-3000:]
    said = json.loads(result.stdout.strip().splitlines()[-1])
    assert said["interpreter"] != "ran"  # the pair is really broken, so the check is right to refuse it
    assert "tflite-runtime 2.14" in said["mismatch"] and f"numpy {np.__version__}" in said["mismatch"]
    assert 'fix: pip install "numpy<2" ai-edge-litert' in said["mismatch"]  # LiteRT is installed here too
    assert said["refused"] == said["mismatch"]
    assert said["backends"] == ["litert", "litert"]
    assert len(said["notes"]) == 1 and "the default backend uses litert instead" in said["notes"][0]


def test_the_command_says_it_in_one_line(mismatched_path, model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", np.zeros((4, 6), np.float32))
    result = run_python("from tflite_fineprune.cli import main; raise SystemExit(main())", "personalize", model,
                        "--data", data, "--state", tmp_path / "s.state", "--backend", "tflite_runtime",
                        extra_path=mismatched_path)
    said = error_lines(result.stderr)
    assert result.returncode == 2 and len(said) == 1, result.stderr[-3000:]
    assert said[0].startswith("tflite-fineprune: error: tflite-runtime 2.14") and 'pip install "numpy<2"' in said[0]
    assert "_ARRAY_API" not in result.stderr and not (tmp_path / "s.state").exists()


def test_with_no_other_interpreter_the_default_backend_names_the_fix(mismatched_path, model, tmp_path):
    shadow = tmp_path / "shadow"
    for package in ("ai_edge_litert", "tensorflow"):  # as if they were not installed, for this process only
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text(f"raise ImportError('no {package} here')\n")
    result = run_python("""
        import sys
        from tflite_fineprune import FinePruneError, Personalizer
        try:
            Personalizer(sys.argv[1])
        except FinePruneError as exc:
            print(exc)
    """, model, extra_path=os.pathsep.join([str(shadow), str(mismatched_path)]))
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout.strip()
    assert said.startswith("tflite-runtime 2.14") and said.endswith("no other TFLite interpreter is installed"), said
