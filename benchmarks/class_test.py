"""How strict should the class test be? The choice of `AutoRule.class_alpha` (and `class_share`), measured.

Step 2 of the automatic recipe (tflite_fineprune/auto_recipe.py) excludes a class
when it was predicted so rarely that a user who really meets it would almost
surely have shown it. Excluding a class only removes it from the argmax, so
its effect on accuracy follows from the dense model's outputs alone: this
script runs each model once per user through the interpreter and then applies
the test at several settings in numpy (the other steps of `auto` — dormant
pruning, the BN shift — are left out; `benchmarks/auto.py` measures the whole
recipe). Two kinds of user per model:

* the benchmark users of `benchmarks/auto.py` (speakers who hold every word;
  class-subset users who meet 2, 3 or 5 classes): mean and worst-decile
  accuracy on their evaluation halves, users helped/hurt;
* users who hold *every* class with a small sample: N samples drawn at random
  from the pool of all evaluation images/clips (N = 17, 30, 50, 100, 200; 200
  draws each) — the case the test must not mistake for a class subset. Printed:
  how often any class they hold was excluded, and the mean accuracy change on
  the whole pool.

usage: python benchmarks/class_test.py [--kinds cifar,speech,fashion] [--alphas 0.005,0.01,0.02,0.05] [--shares 0.5]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import auto  # noqa: E402  (the same models and users as benchmarks/auto.py)
from tflite_fineprune.converters import demo  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.auto_recipe import class_test  # noqa: E402

SAMPLE_SIZES = (17, 30, 50, 100, 200)
DRAWS = 200


def excluded_classes(outputs, share, alpha):
    """The classes the recipe's test excludes, given the dense model's outputs on the observed samples."""
    counts = np.bincount(outputs.argmax(1), minlength=outputs.shape[1])
    test = class_test(counts, len(outputs), share, alpha)
    return np.flatnonzero(counts <= test.max_count) if test.max_count >= 0 else np.array([], int)


def accuracy(outputs, labels, excluded):
    outputs = np.array(outputs, np.float64)
    outputs[:, excluded] = -np.inf
    return float(np.mean(outputs.argmax(1) == labels))


def benchmark_users(kind, data, out):
    build, needs_data = auto.KINDS[kind]
    root = demo.find_data(data, kind == "cifar") if needs_data else None
    model, users, _ = build(root, out, 10 ** 6)
    personalizer = Personalizer(model)
    return [(personalizer.predict(u.adapt_x, progress=False), personalizer.predict(u.eval_x, progress=False), u.eval_y)
            for u in users]


def report(kind, users, settings, rng):
    pool_x = np.concatenate([e for _, e, _ in users])
    pool_y = np.concatenate([y for _, _, y in users])
    held = np.unique(pool_y)
    dense_pool = accuracy(pool_x, pool_y, [])
    dense = np.array([accuracy(e, y, []) for _, e, y in users])
    decile = max(1, len(users) // 10)
    draws = {n: [rng.choice(len(pool_y), n, replace=False) for _ in range(DRAWS)] for n in SAMPLE_SIZES}
    print(f"\n=== {kind}: {len(users)} benchmark users; every-class users drawn from {len(pool_y)} evaluation samples "
          f"of {len(held)} classes (dense accuracy on that pool {dense_pool:.3f})")
    head = "".join(f"  n={n:<3d} P(x)  Δ   " for n in SAMPLE_SIZES)
    print(f"{'share':>5} {'alpha':>6} | {'mean':>5} {'worst10%':>8} {'+/-':>6} | every-class users:{head}")
    for share, alpha in settings:
        pers = np.array([accuracy(e, y, excluded_classes(a, share, alpha)) for a, e, y in users])
        line = (f"{share:5.2f} {alpha:6.3f} | {pers.mean():.3f} {np.sort(pers)[:decile].mean():8.3f} "
                f"{int((pers > dense).sum()):>2d}/{int((pers < dense).sum()):<3d} | {'':18s}")
        for n in SAMPLE_SIZES:
            hit, change = 0, []
            for idx in draws[n]:
                excluded = np.intersect1d(excluded_classes(pool_x[idx], share, alpha), held)
                hit += len(excluded) > 0
                change.append(accuracy(pool_x, pool_y, excluded) - dense_pool)
            line += f"  {hit / DRAWS:5.3f} {100 * np.mean(change):+5.2f}p"
        print(line, flush=True)
    print(f"(dense: mean {dense.mean():.3f}, worst10% {np.sort(dense)[:decile].mean():.3f}; P(x) = share of "
          f"every-class users who lost a class, Δ = their mean accuracy change in points)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="cifar,speech,fashion")
    parser.add_argument("--alphas", default="0.005,0.01,0.02,0.03,0.05")
    parser.add_argument("--shares", default="0.5")
    parser.add_argument("--data")
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = [(float(s), float(a)) for s in args.shares.split(",") for a in args.alphas.split(",")]
    for kind in args.kinds.split(","):
        report(kind, benchmark_users(kind, args.data, out), settings, np.random.default_rng(args.seed))


if __name__ == "__main__":
    main()
