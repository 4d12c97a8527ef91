"""docs/personalization.md's per-user tables at population scale: every speaker, 1,000+ class-subset users per kind.

    python benchmarks/population_tables.py                              # speakers, cifar, fashion; 1,000 users
    python benchmarks/population_tables.py --kinds cifar --count 2000 --engine ray --workers 2
    python benchmarks/population_tables.py --kinds fashion --count 30   # a quick check

Each kind runs through the population engine (`evaluate_population`; the demos' models, exported as the demos
export them) with `auto`, `dense`, `auto` without step 5 (`auto:magnitude_agreement=1.1`) and the kind's best
hand-picked recipe:

* speakers — the MLPerf Tiny DS-CNN, every Speech Commands test speaker with 2 or more clips (half observed);
* cifar — the MLPerf Tiny ResNet-8, `--count` users who meet 2, 3 or 5 CIFAR-10 classes, 50 + 50 test images a
  class (the first 100 of each class are the export's BatchNorm reference and belong to nobody);
* fashion — the 784-1024-1024 MLP of `demo --fashion`, `--count` users of 2, 3 or 5 Fashion-MNIST classes,
  100 + 100 test images a class (the test images written out as `.npy` files once).

Per kind it prints the demos' summary table (mean, std, worst decile dense → personalized, helped/hurt,
units/weights/MACs removed), the same for users grouped by how many classes they meet (class subsets) or by how
many samples they observed (speakers), and the users whom step 5 costs more than a point against `auto` without
it (issue 22's per-user goal). Rows are kept in `OUT/<kind>/users.csv`, so a rerun resumes.
"""

import argparse
import os
import pathlib
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tflite_fineprune.native_logs import silence_interpreters  # noqa: E402
from tflite_fineprune.demo_data import (CIFAR10_TEST, MLPERF_KWS, MLPERF_RESNET8,  # noqa: E402
                                             SPEECH_COMMANDS_TEST, require_data)

KINDS = ("speakers", "cifar", "fashion")
WITHOUT_STEP_5 = "auto:magnitude_agreement=1.1"
BEST_HAND_PICKED = {"speakers": (), "cifar": ("classes:0.1",), "fashion": ("classes:0.1", "prune:0.5+classes:0.1")}
CIFAR_REFERENCE_PER_CLASS = 100  # converters/vision.py: the export's BatchNorm reference images


def _speakers(data, folder, args):
    from tflite_fineprune.converters.speech import export_mlperf

    model = folder / "kws_ds_cnn.tflite"
    if not model.exists():
        print(export_mlperf(model, data, prune_outputs=True), flush=True)
    return model, dict(users="speakers", data=data / SPEECH_COMMANDS_TEST, min_files=2)


def _cifar(data, folder, args):
    from tflite_fineprune.converters.vision import export_mlperf

    model = folder / "resnet8_uint8.tflite"
    if not model.exists():
        print(export_mlperf(model, data, prune_outputs=True), flush=True)
    return model, dict(users="class-subsets", data=data / CIFAR10_TEST, count=args.count, per_class=100,
                       skip_first=CIFAR_REFERENCE_PER_CLASS)


def _fashion(data, folder, args):
    from tflite_fineprune.converters.demo import _sample_files
    from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

    model = folder / "fashion_mlp.tflite"
    if not model.exists():
        print(export_fashion_mlp(model, folder / "fashion_mlp.keras", root=args.fashion_data,
                                 prune_outputs=True)[0], flush=True)
    images = folder / "fashion_test"
    if not (images / "9").is_dir():
        _sample_files(*load_fashion_mnist("test", args.fashion_data), images)
    return model, dict(users="class-subsets", data=images, count=args.count, per_class=200)


def _groups(kind, rows):
    """(title, predicate on a row) for the breakdown lines: classes met, or samples observed."""
    if kind == "speakers":
        return [(f"{lo}–{hi} samples observed" if hi else f"{lo}+ samples observed",
                 lambda r, lo=lo, hi=hi: lo <= int(r["adapt"]) <= (hi or 10**9))
                for lo, hi in ((1, 9), (10, 19), (20, 49), (50, None))]
    return [(f"{k} classes", lambda r, k=k: re.search(rf"-k{k}:", r["user"]) is not None) for k in (2, 3, 5)]


def _step_5_costs(rows):
    """Per user, `auto` minus `auto` without step 5, in accuracy points."""
    by_user = {}
    for row in rows:
        if row["error"] == "" and row["recipe"] in ("auto", WITHOUT_STEP_5):
            by_user.setdefault(row["user"], {})[row["recipe"]] = float(row["accuracy"])
    return np.array([100 * (v["auto"] - v[WITHOUT_STEP_5]) for v in by_user.values() if len(v) == 2])


def run_kind(kind, data, folder, args):
    from tflite_fineprune.population import evaluate_population, format_summary, summarize

    model, users = {"speakers": _speakers, "cifar": _cifar, "fashion": _fashion}[kind](data, folder, args)
    recipes = ["auto", "dense", WITHOUT_STEP_5, *BEST_HAND_PICKED[kind]]
    start = time.perf_counter()
    result = evaluate_population(model, users.pop("users"), recipes=recipes, engine=args.engine,
                                 workers=args.workers if args.engine == "ray" else None, out=folder / kind,
                                 progress=not args.quiet, seed=args.seed, **users)
    wall = time.perf_counter() - start
    rows = result.rows
    count = len({r["user"] for r in rows})
    print(f"\n## {kind}: {count} users, model {model.name}, {args.engine} engine, {wall:.0f} s\n")
    print(format_summary(result.summary))
    print()
    for title, keep in _groups(kind, rows):
        part = [r for r in rows if keep(r) and r["recipe"] in ("auto", "dense")]
        if part:
            auto = summarize(part)[0]
            print(f"{title:<24} {auto['users']:>5} users: dense {auto['dense_mean']:.3f} → auto {auto['mean']:.3f}, "
                  f"worst decile {auto['dense_worst_decile']:.3f} → {auto['worst_decile']:.3f}, "
                  f"{auto['helped']}/{auto['hurt']} helped/hurt, MACs removed {auto['mac_sparsity']:.1%}")
    costs = _step_5_costs(rows)
    if len(costs):
        print(f"step 5 against auto without it: mean {costs.mean():+.2f} pt, worst {costs.min():+.1f} pt; "
              f"{int(np.sum(costs < -1))} of {len(costs)} users lose more than 1 pt")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated of {', '.join(KINDS)}")
    parser.add_argument("--count", type=int, default=1000, help="class-subset users per kind (default 1000)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    parser.add_argument("--data", help="the demo data folder (default $FINEPRUNE_DATA)")
    parser.add_argument("--fashion-data", help="Fashion-MNIST's four files (default: Debian's dataset-fashion-mnist)")
    parser.add_argument("--out", help="keep models and rows here (default: a temporary folder); reruns resume")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; expected some of {', '.join(KINDS)}")
    silence_interpreters()
    needs = {"speakers": (SPEECH_COMMANDS_TEST, MLPERF_KWS), "cifar": (CIFAR10_TEST, MLPERF_RESNET8), "fashion": ()}
    data = require_data([name for k in kinds for name in needs[k]], args.data, "benchmarks/population_tables.py")
    folder = pathlib.Path(args.out or tempfile.mkdtemp(prefix="population-tables-"))
    os.makedirs(folder, exist_ok=True)
    print(f"kinds {', '.join(kinds)}; {args.count} class-subset users per kind; rows under {folder}", flush=True)
    for kind in kinds:
        run_kind(kind, data, folder, args)


if __name__ == "__main__":
    main()
