"""How much smaller and faster each user's slimmed `auto` model is than the dense model, under tflite-runtime.

For every demo user of a kind: `personalize` (the automatic recipe), `slim` the result, and time `infer` of
the slim file against the dense one (the export slimmed with nothing pruned: what an app without
personalization ships) in tflite-runtime 2.14's own environment (`$FINEPRUNE_TFLITE_RUNTIME_PYTHON`, the venv
`.ci/run` makes), calls interleaved, median of repeated calls on the user's held-out samples.

usage: python benchmarks/auto_slim.py [--kind fashion|fashion-cnn|fashion-cnn-plain|cifar|speech] [--users N]
       [--batch 32] [--threads 1]
(fashion-cnn: the BN convnet of `demo --fashion-cnn`; fashion-cnn-plain: the same without BatchNorm)
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

# Runs in the tflite-runtime environment: times each (dense, slim) pair of files on the given inputs.
TIMER = r"""
import json, statistics, sys, time
import numpy as np
from tflite_runtime.interpreter import Interpreter
jobs, batch, threads, repeats = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = []
for dense, slim, inputs in jobs:
    x = np.load(inputs)[:batch]
    runners = [Interpreter(model_path=p, num_threads=threads).get_signature_runner("infer") for p in (dense, slim)]
    times = [[], []]
    for _ in range(repeats):
        for i, run in enumerate(runners):
            start = time.perf_counter()
            run(x=x)
            times[i].append(time.perf_counter() - start)
    out.append([statistics.median(t) / len(x) for t in times])
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="fashion", choices=["fashion", "fashion-cnn", "fashion-cnn-plain", "cifar",
                                                                 "speech"])
    parser.add_argument("--users", type=int, default=10 ** 6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    runtime = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON", ".venv-tflite214/bin/python")
    if not os.path.exists(runtime):
        sys.exit(f"no tflite-runtime Python at {runtime}: set FINEPRUNE_TFLITE_RUNTIME_PYTHON (.ci/run makes one)")
    from tflite_fineprune.converters import demo
    from tflite_fineprune import Personalizer

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build = {"fashion": demo._fashion, "fashion-cnn": demo._fashion_cnn,
             "fashion-cnn-plain": lambda root, out: demo._fashion_cnn(root, out, batchnorm=False),
             "cifar": demo._vision, "speech": demo._speech}[args.kind]
    root = None if args.kind.startswith("fashion") else demo.find_data(None, args.kind == "cifar")
    model, users, recipes, _ = build(root, out)
    auto = recipes[0]
    personalizer = Personalizer(model)
    with tempfile.TemporaryDirectory() as work:
        dense = os.path.join(work, "dense.tflite")
        personalizer.reset()
        dense_bytes = personalizer.slim(dense).slim_bytes
        jobs, rows = [], []
        for i, user in enumerate(users[:args.users]):
            auto.apply(personalizer, user.adapt_x)
            slim_path = os.path.join(work, f"user{i}.tflite")
            report = personalizer.slim(slim_path)
            inputs = os.path.join(work, f"user{i}.npy")
            np.save(inputs, np.asarray(user.eval_x, personalizer.metadata.input_dtype))
            jobs.append([dense, slim_path, inputs])
            rows.append((user.name, report.mac_sparsity, report.slim_bytes))
        timed = subprocess.run([runtime, "-c", TIMER, json.dumps(jobs), str(args.batch), str(args.threads),
                                str(args.repeats)], capture_output=True, text=True, check=True)
        times = json.loads(timed.stdout.strip().splitlines()[-1])
    print(f"{'user':<20} {'MACs removed':>12} {'slim MB':>8} {'dense ms':>9} {'slim ms':>8} {'speed-up':>8}")
    for (name, macs, size), (dense_s, slim_s) in zip(rows, times):
        print(f"{name[:20]:<20} {macs:>12.1%} {size / 1e6:>8.2f} {dense_s * 1e3:>9.4f} {slim_s * 1e3:>8.4f} "
              f"{dense_s / slim_s:>7.1f}×")
    speedups = [d / s for d, s in times]
    print(f"{len(rows)} users, tflite-runtime, {args.threads} thread(s), batches of {args.batch}: dense file "
          f"{dense_bytes / 1e6:.2f} MB; MACs removed {np.mean([r[1] for r in rows]):.1%} on average; speed-up "
          f"median {statistics.median(speedups):.1f}×, min {min(speedups):.1f}×, max {max(speedups):.1f}×")


if __name__ == "__main__":
    main()
