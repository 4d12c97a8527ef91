"""Peak memory of personalizing each demo model through the TF-free runtime (docs/performance.md quotes this).

For each demo model (the exports `tflite-fineprune demo` makes), the user with the most adaptation samples is
personalized in a fresh process that imports no TensorFlow (tests/memory_worker.py): open the model,
`personalize` (the automatic routine), save the state, load it into a fresh Personalizer, slim it. The worker
prints its peak address space (VmPeak: what `ulimit -v` / RLIMIT_AS limits) and peak resident memory (VmHWM).
Each model is then run again under an address-space limit of the measured peak plus `--margin` MiB, to show that
this much is enough. Exporting needs TensorFlow and the demo data (docs/data.md); that part is not measured.

usage: python benchmarks/memory.py [--only speech,vision,fashion] [--cache DIR] [--python PYTHON] [--margin 32]
                                  [--arena-max N]
`--python`: the interpreter the worker runs under (e.g. the tflite-runtime 2.14 venv; it skips slim there).
`--arena-max N`: run the worker with MALLOC_ARENA_MAX=N (glibc reserves 64 MiB of address space per malloc arena,
up to one per thread: interpreter thread pools show in the address space, not in the resident memory).
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORKER = REPO / "tests" / "memory_worker.py"


def build(kind, workdir, cache):
    """`(model path, the largest user's adaptation inputs)` for one kind of demo user."""
    from tflite_fineprune.converters import demo

    if kind == "fashion":
        from tflite_fineprune.converters.fashion import find_fashion_mnist

        root = find_fashion_mnist(None)
        cached = pathlib.Path(cache) / "fashion_mlp.keras"
        if cached.exists():  # the demo trains the MLP into its output folder and reuses it from there
            (pathlib.Path(workdir) / "fashion_mlp.keras").write_bytes(cached.read_bytes())
        model, users, _, _ = demo._fashion(root, pathlib.Path(workdir))
        if not cached.exists():
            cached.write_bytes((pathlib.Path(workdir) / "fashion_mlp.keras").read_bytes())
    else:
        root = demo.find_data(None, vision=kind == "vision")
        model, users, _, _ = (demo._vision if kind == "vision" else demo._speech)(root, pathlib.Path(workdir))
    return model, max(users, key=lambda u: len(u.adapt_x)).adapt_x


def run_worker(python, model, inputs, workdir, limit_mib, slim, arena_max=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), **({"MALLOC_ARENA_MAX": str(arena_max)} if arena_max else {}))
    command = [python, str(WORKER), str(model), str(inputs), str(workdir), str(limit_mib), "personalize"]
    result = subprocess.run(command + ([] if slim else ["--no-slim"]), capture_output=True, text=True, env=env)
    if result.returncode:
        return None, result.stderr.strip().splitlines()[-1]
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="speech,vision,fashion")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "fineprune-memory-cache"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--margin", type=int, default=32, help="MiB above the measured peak for the limited rerun")
    parser.add_argument("--arena-max", type=int, help="MALLOC_ARENA_MAX for the worker (default: unset)")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    slim = args.python == sys.executable
    rows = []
    for kind in args.only.split(","):
        with tempfile.TemporaryDirectory() as workdir:
            model, x = build(kind, workdir, args.cache)
            np.save(os.path.join(workdir, "x.npy"), x)
            inputs = os.path.join(workdir, "x.npy")
            report, error = run_worker(args.python, model, inputs, workdir, 0, slim, args.arena_max)
            if error:
                raise SystemExit(f"{kind}: the worker failed: {error}")
            limit = int(math.ceil(report["peak_address_space_mib"])) + args.margin
            limited, error = run_worker(args.python, model, inputs, workdir, limit, slim, args.arena_max)
            rows.append((kind, os.path.getsize(model), x.shape, x.nbytes, report, limit, error or "ok"))
    print(f"worker: {args.python}; MALLOC_ARENA_MAX={args.arena_max or 'unset'}; backend {rows[0][4]['backend']}; "
          f"TensorFlow imported: {any(r[4]['tensorflow_imported'] for r in rows)}")
    print(f"{'model':<8} {'file MB':>8} {'user inputs':>22} {'inputs MB':>10} {'peak RSS MiB':>13} "
          f"{'peak AS MiB':>12}  rerun under RLIMIT_AS")
    for kind, size, shape, nbytes, report, limit, outcome in rows:
        print(f"{kind:<8} {size / 1e6:>8.3f} {str(shape):>22} {nbytes / 1e6:>10.1f} "
              f"{report['peak_resident_mib']:>13.1f} {report['peak_address_space_mib']:>12.1f}  {limit} MiB: {outcome}")


if __name__ == "__main__":
    main()
