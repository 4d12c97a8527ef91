"""How fast a population is judged: the local engine against Ray with 1 and 2 workers, in one run.

    python benchmarks/population.py --count 1000                      # docs/population.md's table
    python benchmarks/population.py --count 10000 --engines ray:2     # the 10,000-user run
    python benchmarks/population.py --count 20 --engines local,ray:2  # a quick check that it works

CIFAR-10 class-subset users (2, 3 or 5 classes each, 100 files per class, half observed without labels) on the
MLPerf Tiny ResNet-8 exported by the vision converter (the first 100 test images of each class are its
normalization reference and belong to nobody), recipe `auto`. For each engine: wall time (Ray's includes its
start-up, reported apart), users/s, the seconds a user takes inside a worker, the per-user overhead against the
in-process loop (the local engine), each worker's peak memory, and whether the rows equal the local engine's.
The last line: a million users in CPU-hours from the measured per-user cost, and the command for a cluster.
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tflite_fineprune.native_logs import silence_interpreters  # noqa: E402
from tflite_fineprune.demo_data import CIFAR10_TEST, require_data  # noqa: E402

REFERENCE_PER_CLASS = 100  # converters/vision.py: the export's BatchNorm reference images, never a user's


def _engines(text):
    engines = []
    for part in text.split(","):
        name, _, workers = part.partition(":")
        if name not in ("local", "ray") or (name == "ray" and not workers.isdigit()):
            raise argparse.ArgumentTypeError(f"expected local or ray:N, got {part!r}")
        engines.append((name, int(workers) if workers else None))
    return engines


def _model(path, data, folder):
    if path:
        return path
    from tflite_fineprune.converters.vision import export_mlperf  # needs TensorFlow: only when no --model is given

    model = pathlib.Path(folder) / "resnet8.tflite"
    print(export_mlperf(model, data), flush=True)
    return model


def _warm_file_cache(folder):
    """Read every file once, so that the first engine timed does not pay for the disk (the order would bias it)."""
    for path in sorted(pathlib.Path(folder).rglob("*")):
        if path.is_file():
            path.read_bytes()


def _run(model, data, args, engine, workers, out):
    from tflite_fineprune import evaluate_population

    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resumed one
    start = time.perf_counter()
    result = evaluate_population(model, "class-subsets", data=data, count=args.count, per_class=args.per_class,
                                 skip_first=REFERENCE_PER_CLASS, recipes=args.recipes, engine=engine,
                                 workers=workers, out=out, progress=not args.quiet, seed=args.seed,
                                 users_per_task=args.users_per_task)
    return result, time.perf_counter() - start, (pathlib.Path(out) / "users.csv").read_bytes()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="users (default 1000)")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--engines", type=_engines, default=_engines("local,ray:1,ray:2"),
                        help="comma-separated: local, ray:N (default local,ray:1,ray:2)")
    parser.add_argument("--recipe", action="append", dest="recipes", help="default: auto")
    parser.add_argument("--model", help="an exported ResNet-8 (default: export it with the vision converter)")
    parser.add_argument("--data", help="the demo data folder (default $FINEPRUNE_DATA)")
    parser.add_argument("--users-per-task", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the runs' folders here (default: a temporary folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.recipes = args.recipes or ["auto"]
    silence_interpreters()
    data = require_data([CIFAR10_TEST], args.data, "benchmarks/population.py") / CIFAR10_TEST
    folder = args.out or tempfile.mkdtemp(prefix="population-bench-")
    os.makedirs(folder, exist_ok=True)
    model = _model(args.model, data.parent, folder)
    print(f"{args.count} CIFAR-10 class-subset users, {args.per_class} files per class, recipes "
          f"{', '.join(args.recipes)}, model {model}, {os.cpu_count()} CPUs", flush=True)
    _warm_file_cache(data)
    measured, reference = [], None
    for engine, workers in args.engines:
        label = engine if engine == "local" else f"ray, {workers} worker{'s' if workers != 1 else ''}"
        result, wall, rows = _run(model, data, args, engine, workers, os.path.join(folder, label.replace(", ", "-")))
        if reference is None:
            reference = rows
        measured.append((label, result.info, wall, rows == reference))
        print(f"{label}: {wall:.1f} s", flush=True)
    _report(measured, args)
    if not args.out:
        shutil.rmtree(folder, ignore_errors=True)


def _report(measured, args):
    local = next((info for label, info, _, _ in measured if label == "local"), None)
    base = local["seconds"] / args.count if local else None
    print("\n| engine | wall s | start-up s | users/s | s/user in a worker | overhead/user vs local | "
          "peak MB/worker | rows = local |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, info, wall, same in measured:
        per_user = (info["seconds"] - info["startup_seconds"]) / args.count * info["workers"]
        overhead = f"{per_user / base - 1:+.1%}" if base else "—"
        peak = max(info["worker_peak_rss_mb"].values()) if info["worker_peak_rss_mb"] else float("nan")
        print(f"| {label} | {wall:.1f} | {info['startup_seconds']:.1f} | {args.count / info['seconds']:.2f} | "
              f"{info['worker_seconds_per_user']:.3f} | {overhead} | {peak:.0f} | {'yes' if same else 'NO'} |")
    if local:
        for label, info, _, _ in measured:
            if label != "local":
                print(f"{label}: {local['seconds'] / info['seconds']:.2f}× the local engine "
                      f"({local['seconds'] / (info['seconds'] - info['startup_seconds']):.2f}× after start-up)")
    # The in-process loop's cost when it ran (one CPU, nothing else), else the first engine's.
    cost = (local or measured[0][1])["worker_seconds_per_user"]
    print(f"\na million users at {cost:.3f} CPU-seconds each: {cost * 1e6 / 3600:.0f} CPU-hours; on a cluster: "
          "RAY_ADDRESS=HEAD:6379 tflite-fineprune population resnet8.tflite --data cifar10_test "
          "--users class-subsets --count 1000000 --skip-first 100 --recipe auto --engine ray -o pop/")


if __name__ == "__main__":
    main()
