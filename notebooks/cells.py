"""What every notebook's cells share: the setup cell, the parameter head, cell constructors."""

import nbformat

# Shared by every notebook: where we run (Colab or a checkout), whether the network may be used, install.
SETUP = r'''
import importlib.util, os, pathlib, socket, subprocess, sys, time

IN_COLAB = importlib.util.find_spec("google.colab") is not None


def reachable(host, port=443, timeout=3.0):
    """A quick TCP probe, so offline runs (CI, this repository's tests) skip downloads within seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


# FINEPRUNE_OFFLINE=1 (set by tests/test_notebooks.py) forbids downloads even where the network is up.
ONLINE = os.environ.get("FINEPRUNE_OFFLINE") != "1" and reachable("storage.googleapis.com")
if IN_COLAB:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"tflite-fineprune[demo] @ git+{REPO_URL}"],
                   check=True)
    REPO_ROOT = None
else:
    # A checkout: the notebooks live in <repo>/notebooks, the packages in <repo> (else: installed, or on PYTHONPATH).
    REPO_ROOT = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents)
                      if (p / "tflite_fineprune").is_dir()),
                     None)
    if REPO_ROOT and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
print(f"Colab: {IN_COLAB}; network: {'yes' if ONLINE else 'no (offline: downloads are skipped, local data is used)'}; "
      f"quick settings: {QUICK}")
'''

PARAMS_HEAD = r'''
import os

# PLACEHOLDER: the public repository is not known yet; replace OWNER/REPO before sharing the Colab links.
REPO_URL = "https://github.com/OWNER/REPO"
QUICK = os.environ.get("FINEPRUNE_QUICK") == "1"  # small settings: every notebook runs in minutes on 2 CPU cores
'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text):
    return nbformat.v4.new_code_cell(text.strip())
