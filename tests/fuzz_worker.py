"""A worker process of tests/test_fuzz_models.py: `inspect`, `slim` and `personalize` on each model path it reads.

Usage: `python -m tests.fuzz_worker STATE OUTPUT_FOLDER`, then one model path a line on stdin. For each path it
writes one JSON line per step, in the order of `STEPS`, as soon as the step ends: `{"step", "outcome", "detail"}`
where the outcome is "ok", "refused" (a `FinePruneError`) or "escaped" (any other exception, with its type and
traceback's last frames). A step that kills the process (a crash in native code) or never ends writes nothing: the
parent sees which by the lines it did get.
"""

import io
import json
import os
import sys
import traceback
from contextlib import redirect_stdout

import numpy as np

from tflite_fineprune import FinePruneError, Personalizer
from tflite_fineprune.cli import main as cli_main
from tflite_fineprune.metadata import read_model_file
from tflite_fineprune.slim import slim_model

STEPS = ("inspect", "slim", "personalize")


def inspect(path, state, output):
    read_model_file(path)
    with redirect_stdout(io.StringIO()):  # the command's own printing of what it read, as `inspect` shows it
        code = cli_main(["inspect", path])
    if code not in (0, 2):
        raise AssertionError(f"inspect exited {code}")


def slim(path, state, output):
    slim_model(path, state, output)


def personalize(path, state, output):
    personalizer = Personalizer(path)
    shape = (24,) + tuple(personalizer.metadata.input_shape[1:])
    personalizer.personalize(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    personalizer.get_state()


def run(step, path, state, output):
    try:
        {"inspect": inspect, "slim": slim, "personalize": personalize}[step](path, state, output)
        return "ok", ""
    except FinePruneError as exc:
        return "refused", str(exc)
    except Exception as exc:  # noqa: BLE001 - what escapes is what the fuzz test reports
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return "escaped", f"{type(exc).__name__}: {exc}\n{''.join(frames[-3:])}"


def main():
    state, output_folder = sys.argv[1], sys.argv[2]
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout, native code included, cannot garble the replies
    sys.stdout = sys.stderr
    for line in sys.stdin:
        path = line.rstrip("\n")
        output = os.path.join(output_folder, os.path.basename(path) + ".slim")
        for step in STEPS:
            outcome, detail = run(step, path, state, output)
            print(json.dumps({"step": step, "outcome": outcome, "detail": detail[-2000:]}), file=replies, flush=True)


if __name__ == "__main__":
    main()
