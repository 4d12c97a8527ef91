"""The command line in a fresh process, as a user runs it: the one helper the tests use for that.

`run_cli("inspect", path)` runs `python -m tflite_fineprune inspect path` with this checkout first on
`PYTHONPATH` (so the process runs the code under test whatever its working folder) and returns the
`subprocess.CompletedProcess`; `one_line_error(result)` says whether it failed the way every bad input must:
exit status 2 and one line `tflite-fineprune: error: …`.
"""

import os
import pathlib
import re
import subprocess
import sys

REPO = str(pathlib.Path(__file__).resolve().parents[1])


def run_cli(*args, module="tflite_fineprune", env=None, cwd=None, timeout=600, text=True, as_user=False):
    """Run `python -m <module> *args` in a new process and wait for it.

    Parameters
    ----------
    *args : str, os.PathLike, bytes or number
        The command's arguments; bytes pass through unchanged (file names that are not UTF-8), anything else
        as `str`.
    module : str
        The module run with `-m` (`"tflite_fineprune.converters.speech"` for a converter's own command).
    env : dict, optional
        The environment (default: this process's); the checkout is put first on its `PYTHONPATH`.
    cwd : str or os.PathLike, optional
        The working folder of the process.
    timeout : float
        Seconds before `subprocess.TimeoutExpired` is raised.
    text : bool
        Decode stdout and stderr as text (False: bytes).
    as_user : bool
        Drop `TF_CPP_MIN_LOG_LEVEL` from the environment, so TensorFlow's start-up chatter is as a user
        sees it (the test environment usually sets it).

    Returns
    -------
    subprocess.CompletedProcess
        With `returncode`, `stdout` and `stderr` captured.
    """
    env = dict(os.environ if env is None else env)
    if as_user:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=text, timeout=timeout,
                          env=env, cwd=cwd)


def cli_output(*args, **kwargs):
    """`run_cli`, asserting the command succeeded; its stdout."""
    result = run_cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def error_lines(stderr):
    """stderr without progress bars and LiteRT's delegate notice: what a failed command says."""
    bar = re.compile(r"\[\d\d:\d\d.*(it|file|batch)/s\]")
    return [line for line in stderr.strip().splitlines()
            if line.strip() and not line.startswith("INFO:") and not bar.search(line)]


def one_line_error(result):
    """Whether a finished command failed as a bad input must: exit 2, one line `tflite-fineprune: error: …`."""
    lines = error_lines(result.stderr)
    return result.returncode == 2 and len(lines) == 1 and lines[0].startswith("tflite-fineprune: error:")
