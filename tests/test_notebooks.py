"""The Colab notebooks (notebooks/*.ipynb): executed headless, offline and in quick mode; committed stripped.

Executing them needs nbclient, nbformat and ipykernel (the `test` extra) and the demo data
($FINEPRUNE_DATA or ../shared/data; the quickstart also Fashion-MNIST from Debian's
dataset-fashion-mnist). The kernel is the interpreter running pytest, so the checkout's packages are
the ones the notebooks import. FINEPRUNE_OFFLINE=1 keeps them from downloading anything.
"""

import json
import os
import pathlib
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quickstart", "your_keywords", "paper_imagenet", "phone_assets")
CELL_TIMEOUT_S = 600


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stripped(name):
    """No outputs or execution counts in git: diffs stay readable, no stale results pass for measurements."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{name}.ipynb carries outputs or execution counts in cells {dirty}; strip them " \
                      "(python notebooks/build.py rewrites every notebook stripped)"
    assert nb["cells"][0]["cell_type"] == "markdown" and "What this shows" in "".join(nb["cells"][0]["source"])
    assert "QUICK" in "".join(nb["cells"][1]["source"]), "the second cell holds the parameters"


def test_notebooks_match_their_generator():
    """The .ipynb files are what notebooks/build.py writes (edit the generator, then rebuild)."""
    import subprocess

    pytest.importorskip("nbformat")
    run = subprocess.run([sys.executable, str(NOTEBOOKS / "build.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec that starts this very interpreter, found first through JUPYTER_PATH."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    name = "fineprune-test-python"
    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    old = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "FINEPRUNE_QUICK", "FINEPRUNE_OFFLINE", "PYTHONPATH",
                                          "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(spec.parents[1]), old["JUPYTER_PATH"]]))
    os.environ["FINEPRUNE_QUICK"] = "1"
    os.environ["FINEPRUNE_OFFLINE"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), old["PYTHONPATH"]]))
    yield name
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_offline_in_quick_mode(name, kernel_name, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from tflite_fineprune.demo_data import data_root

    if not data_root().is_dir():
        pytest.skip(f"demo data folder {data_root()} is absent (set FINEPRUNE_DATA)")
    if name == "quickstart":
        from tflite_fineprune.converters.fashion import find_fashion_mnist
        from tflite_fineprune.errors import FinePruneError

        try:
            find_fashion_mnist()
        except FinePruneError as exc:
            pytest.skip(str(exc))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    # Run in a scratch folder (outputs are written there) that still finds the checkout through PYTHONPATH.
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S, startup_timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.time()
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{name}.ipynb failed:\n{str(exc)[-4000:]}")
    seconds = time.time() - start
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "offline" in text, "an offline run must say that it skipped the downloads"
    print(f"{name}.ipynb ran in {seconds:.0f} s")
