"""Hostile models: ≥ 300 byte-mutated exports, re-sealed with a valid SHA-256, fed to inspect, slim and personalize.

Only `FinePruneError` may escape the library, and the command prints one `error:` line and exits 2. Each model
runs in a worker process (tests/fuzz_worker.py) with a time limit, so that a crash in native code or a hang is a
reported failure of this test, not a dead or stalled test run; crashes are listed apart from escaped exceptions.
The mutations are seeded (tests/model_mutations.py): every run feeds the same files. Before tflite/structure.py,
these 320 let 107 exceptions out of slim (struct.error, ValueError, TypeError, IndexError, AttributeError),
crashed LiteRT once and tflite-runtime 2.14 on 71 of the 147 that the metadata checks let through. What the
checks cannot see, the values inside constants, can still crash tflite-runtime 2.14 (structure.py says which).
"""

import json
import os
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.cli import error_lines, run_cli
from tests.fuzz_worker import STEPS
from tests.model_mutations import KINDS, mutants

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = 320
STEP_SECONDS = 60  # per step of a model: generous on a loaded machine, and a hang still ends
WORKERS = 2


@pytest.fixture(scope="module")
def model_and_state(tmp_path_factory):
    """A small exported model (two hidden Dense groups and prunable classes) and a state personalized for it."""
    import keras
    from keras import layers

    from tflite_fineprune import Personalizer, export_model

    folder = tmp_path_factory.mktemp("fuzz")
    keras.utils.set_random_seed(21)  # the same weights, so the same bytes to mutate, every session
    model = keras.Sequential([keras.Input((6,)), layers.Dense(12, activation="relu"),
                              layers.Dense(10, activation="relu"), layers.Dense(4)])
    path = folder / "dense.tflite"
    export_model(model, path)
    personalizer = Personalizer(path)
    personalizer.personalize(np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32))
    personalizer.prune(0.3)
    state = folder / "dense.state"
    personalizer.save_state(state)
    return path, state


@pytest.fixture(scope="module")
def mutant_files(model_and_state, tmp_path_factory):
    model, _ = model_and_state
    folder = tmp_path_factory.mktemp("mutants")
    files = []
    for index, (kind, blob) in enumerate(mutants(model.read_bytes(), MUTANTS, seed=21)):
        path = folder / f"m{index:03d}-{kind}.tflite"
        path.write_bytes(blob)
        files.append(path)
    return files


class Worker:
    """One `tests.fuzz_worker` process; `run(path)` gives each step's outcome, "crashed" or "hung" for the rest."""

    def __init__(self, state, output, python=sys.executable):
        self.args = [python, "-m", "tests.fuzz_worker", str(state), str(output)]
        self.process = None
        self.pending = b""

    def start(self):
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=REPO, env=env)

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
            self.pending = b""

    def run(self, path):
        if self.process is None:
            self.start()
        self.process.stdin.write(f"{path}\n".encode())
        self.process.stdin.flush()
        outcomes = {}
        for step in STEPS:
            line = self._line(time.monotonic() + STEP_SECONDS)
            if line is None or not line.strip():  # the time ran out, or the worker died (EOF)
                ending = "hung" if line is None else f"crashed (exit {self.process.wait()})"
                self.stop()
                for rest in STEPS[len(outcomes):]:
                    outcomes[rest] = {"outcome": ending, "detail": ""}
                break
            reply = json.loads(line)
            outcomes[reply["step"]] = reply
        return outcomes

    def _line(self, deadline):
        """The worker's next line; b"" at its end, None when `deadline` passes first."""
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            if not ready:
                return None
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                return b""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line


def run_all(files, state, output, python=sys.executable):
    """{path: {step: outcome}} for every file, `WORKERS` processes of `python` at a time."""
    pending = list(files)
    results = {}
    lock = threading.Lock()

    def drain():
        worker = Worker(state, output, python)
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    path = pending.pop()
                results[path] = worker.run(path)
        finally:
            worker.stop()

    threads = [threading.Thread(target=drain) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(scope="module")
def outcomes(mutant_files, model_and_state, tmp_path_factory):
    _, state = model_and_state
    return run_all(mutant_files, state, tmp_path_factory.mktemp("slim-out"))


def test_the_mutants_are_many_sealed_and_of_every_kind(mutant_files, model_and_state):
    from tflite_fineprune.tflite.flatbuffer import content_digest

    assert len(mutant_files) >= 300
    assert {path.stem.split("-")[1] for path in mutant_files} == set(KINDS)
    original = model_and_state[0].read_bytes()
    sealed = 0
    for path in mutant_files:
        blob = path.read_bytes()
        assert blob != original
        recorded = blob[blob.find(b'"content_sha256": "') + 19:][:64].decode("ascii", "replace")
        sealed += content_digest(blob, recorded) == recorded
    assert sealed == len(mutant_files)  # every mutant passes the integrity check: the parsers meet the damage


def _summary(outcomes, wanted):
    lines = []
    for path, steps in sorted(outcomes.items()):
        for step, reply in steps.items():
            if wanted(reply["outcome"]):
                detail = reply["detail"].splitlines()[0] if reply["detail"] else ""
                lines.append(f"{path.name} {step}: {reply['outcome']} {detail}")
    return lines


def test_only_finepruneerror_escapes_inspect_slim_and_personalize(outcomes):
    assert len(outcomes) >= 300
    escaped = _summary(outcomes, lambda outcome: outcome == "escaped")
    stopped = _summary(outcomes, lambda outcome: outcome.startswith(("crashed", "hung")))
    counts = {step: sum(steps[step]["outcome"] == "refused" for steps in outcomes.values()) for step in STEPS}
    assert not escaped and not stopped, (
        f"{len(escaped)} exceptions other than FinePruneError:\n" + "\n".join(escaped[:40])
        + f"\n{len(stopped)} crashes or hangs (native code):\n" + "\n".join(stopped[:40]) + f"\nrefused: {counts}")
    assert all(count > 0 for count in counts.values()), counts  # the damage was seen, by every step


def test_tflite_runtime_meets_the_mutants_that_pass_every_check(outcomes, model_and_state, tmp_path):
    """The files the checks let through, personalized by the other interpreter (tflite-runtime 2.14, its venv)."""
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("FINEPRUNE_TFLITE_RUNTIME_PYTHON is not set (.ci/run creates the tflite-runtime 2.14 venv)")
    accepted = [path for path, steps in outcomes.items() if steps["inspect"]["outcome"] == "ok"]
    assert accepted  # some damage passes every check (e.g. a changed weight): the interpreter must still hold
    results = run_all(accepted, model_and_state[1], tmp_path, python=python)
    failed = _summary(results, lambda outcome: outcome == "escaped" or outcome.startswith(("crashed", "hung")))
    assert not failed, f"{len(failed)} of {len(accepted)} under tflite-runtime:\n" + "\n".join(failed[:40])


def _emptied_vector(blob, builtin, field):
    """`blob` re-sealed with the inputs (`field` 6) or outputs (8) vector of the first `builtin` operator emptied."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.model_mutations import reseal

    model = schema.Model.GetRootAsModel(blob, 0)
    subgraph = model.Subgraphs(0)
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        if model.OperatorCodes(operator.OpcodeIndex()).BuiltinCode() == builtin:
            length_at = operator._tab.Vector(operator._tab.Offset(field)) - 4
            return reseal(blob[:length_at] + bytes(4) + blob[length_at + 4:]), index
    raise AssertionError(f"no operator {builtin} in the model")


@pytest.mark.parametrize("builtin, field, what", [(143, 8, "0 outputs"), (65, 8, "0 outputs"), (65, 6, "0 inputs")])
def test_the_operators_that_crashed_litert_are_refused_by_name(model_and_state, tmp_path, builtin, field, what):
    """Found by the fuzz: a READ_VARIABLE or SLICE without its output, a SLICE without inputs, crashed LiteRT."""
    from tflite_fineprune import FinePruneError, Personalizer

    blob, index = _emptied_vector(model_and_state[0].read_bytes(), builtin, field)
    path = tmp_path / "crafted.tflite"
    path.write_bytes(blob)
    with pytest.raises(FinePruneError, match=f"operator {index} of subgraph 0 .*{what}"):
        Personalizer(path)


def _cli(*args):
    return run_cli(*args, timeout=120, cwd=REPO)


def test_a_sample_through_the_command_is_one_error_line_and_exit_2(outcomes, model_and_state, tmp_path):
    _, state = model_and_state
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "samples.npy", np.random.default_rng(1).standard_normal((24, 6)).astype(np.float32))
    refused = {step: sorted(path for path, steps in outcomes.items() if steps[step]["outcome"] == "refused")
               for step in STEPS}
    commands = {
        "inspect": lambda path: ("inspect", path),
        "slim": lambda path: ("slim", path, "--state", state, "-o", tmp_path / "slim.tflite"),
        "personalize": lambda path: ("personalize", path, "--data", data, "--state", tmp_path / "new.state"),
    }
    for step, paths in refused.items():
        sample = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, 3)]  # one of each part of the seed's order
        for path in sample:
            result = _cli(*commands[step](path))
            said = error_lines(result.stderr)
            assert result.returncode == 2, (step, path.name, result.stderr[-2000:])
            assert len(said) == 1 and said[0].startswith("tflite-fineprune: error: "), (step, path.name, said)
