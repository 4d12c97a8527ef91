"""The CLI says what it does (issue #15, part 4): real exports, real files, the real entry point in a subprocess."""

import os
import subprocess
import sys

import numpy as np

from tests.synthetic import images


def run(*args, env=None):
    env = dict(os.environ if env is None else env)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it
    return subprocess.run([sys.executable, "-m", "tflite_fineprune", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env)


def npy_folder(root, x):
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "samples.npy", x)
    return root


def test_no_interpreter_notes_on_runtime_commands(exports, tmp_path):
    model = exports.path("plain_cnn", prune_outputs=True)
    data = npy_folder(tmp_path / "user", images(12))
    result = run("personalize", model, "--data", data, "--state", tmp_path / "me.state")
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "INFO:" not in result.stderr, result.stderr
    npy_folder(tmp_path / "test" / "3", images(4))
    result = run("evaluate", model, "--data", tmp_path / "test")
    assert result.returncode == 0 and "XNNPACK" not in result.stderr, result.stderr


def test_a_closed_pipe_ends_quietly(exports):
    process = subprocess.Popen([sys.executable, "-m", "tflite_fineprune", "inspect", exports.path("plain_cnn")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # like `| head` that has read what it wanted before the report is written
    err = process.stderr.read().decode()
    assert process.wait() == 141 and err == "", err
