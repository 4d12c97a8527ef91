"""The TF-free runtime works on machines with little memory: reads are sized by the file, never by a cap.

`f.read(n)` allocates n bytes before reading; a model read with the 16 GiB model cap as n raised MemoryError on
any machine (or container, or `ulimit -v`) with less address space than that. The routine measured here (open,
observe, prune, save, load, slim) peaks at about 180 MiB of address space under LiteRT. tflite-runtime's thread
pool adds one glibc malloc arena (64 MiB of reserved address space, little of it used) per thread: about 780 MiB on a
2-core machine, more with more cores, so the workers run with MALLOC_ARENA_MAX=2 (about 200 MiB; what a
memory-limited deployment sets too) and the test does not depend on the machine's core count.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tflite_fineprune import FinePruneError
from tflite_fineprune.safe_io import read_file
from tests.synthetic import synthetic_inputs

WORKER = pathlib.Path(__file__).with_name("memory_worker.py")
REPO = WORKER.parents[1]
LIMIT_MIB = 1024

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")


def run_limited(python, model, tmp_path, *flags):
    np.save(tmp_path / "x.npy", synthetic_inputs("plain_cnn", 48, 0))
    env = dict(os.environ, PYTHONPATH=str(REPO), MALLOC_ARENA_MAX="2")
    result = subprocess.run([python, str(WORKER), str(model), str(tmp_path / "x.npy"), str(tmp_path), str(LIMIT_MIB),
                             "levers", *flags], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runtime_routine_fits_in_one_gib_of_address_space(exports, tmp_path):
    report = run_limited(sys.executable, exports.path("plain_cnn"), tmp_path)
    assert not report["tensorflow_imported"]
    assert report["reloaded_state_agrees"]
    assert report["slim_bytes"] > 0
    assert "not a tflite-fineprune export" in (report["malformed_refused"] or ""), report
    assert report["peak_address_space_mib"] < LIMIT_MIB


def test_tflite_runtime_routine_fits_in_one_gib_of_address_space(exports, tmp_path):
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set (.ci/run creates the tflite-runtime 2.14 venv)")
    report = run_limited(python, exports.path("plain_cnn"), tmp_path, "--no-slim")  # slim needs LiteRT's schema
    assert report["backend"] == "tflite_runtime" and not report["tensorflow_imported"]
    assert report["reloaded_state_agrees"]


def test_a_file_larger_than_its_stat_says_is_still_capped():
    # /proc files report size 0 and then yield more: the cap must hold while streaming, not only against stat.
    status = pathlib.Path("/proc/self/status")
    assert status.stat().st_size == 0
    assert b"VmPeak" in read_file(status, "status", max_bytes=1 << 20)
    with pytest.raises(FinePruneError, match="grew past 16 bytes while being read"):
        read_file(status, "status", max_bytes=16)


def test_an_oversized_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(100))
    assert read_file(path, "blob", max_bytes=100) == bytes(100)
    with pytest.raises(FinePruneError, match="has 100 bytes; at most 99 are expected"):
        read_file(path, "blob", max_bytes=99)
