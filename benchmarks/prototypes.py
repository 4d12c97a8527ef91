"""T3A classifier prototypes (`adapt_classifier`) for speakers and CIFAR-10 class-subset users.

The same users, models and reference pools as benchmarks/auto.py (its
builders, with `classifier_prototypes=True` added to the export). Rows:
dense, auto (default: `personalize`, which never uses prototypes), and
`prototypes β=b`: reset, observe the adaptation half, `adapt_classifier(b)`;
`auto + prototypes β=b`: `personalize`, then the supports are collected again
under the personalized model (so excluded classes get none) and
`adapt_classifier(b)`.

usage: python benchmarks/prototypes.py [--kinds speech,cifar] [--users N] [--confidence T] [--out DIR]
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import auto  # noqa: E402
from tflite_fineprune.converters import demo  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.converters.evaluation import Recipe, evaluate_users, format_summary, summarize, write_csv  # noqa: E402
from tflite_fineprune.export.prototypes import DEFAULT_CONFIDENCE  # noqa: E402

STRENGTHS = (0.2, 0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Prototypes:
    """Observe, then blend the classifier toward the user's prototypes; optionally after `personalize`."""

    name: str
    strength: float
    after_auto: bool = False

    def apply(self, personalizer, adapt_x, seed=0):
        if self.after_auto:
            personalizer.personalize(adapt_x, auto.AUTO, progress=False)
            personalizer.reset(counts=True, masks=False)
        else:
            personalizer.reset()
        personalizer.observe(adapt_x, progress=False)
        personalizer.adapt_classifier(self.strength)


def recipes():
    rows = [demo.AUTO, Recipe("dense")]
    rows += [Prototypes(f"prototypes β={b}", b) for b in STRENGTHS]
    rows += [Prototypes(f"auto + prototypes β={b}", b, after_auto=True) for b in (0.5,)]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="speech,cifar")
    parser.add_argument("--data")
    parser.add_argument("--users", type=int, default=10 ** 6, help="evaluate only the first N users")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="τ of the export")
    parser.add_argument("--out", default="benchmarks/out/prototypes")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    builders = {"speech": auto._speech, "cifar": auto._cifar}
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        root = demo.find_data(args.data, kind == "cifar")
        model, users, _ = builders[kind](root, out, args.users, classifier_prototypes=True,
                                         prototype_confidence=args.confidence)
        print(f"\n=== {kind}: {len(users)} users; τ = {args.confidence}; auto = {auto.AUTO}")
        rows = evaluate_users(Personalizer(model), users, recipes(), others_per_user=100, progress=False)
        print(format_summary(summarize(rows)))
        write_csv(rows, out / f"prototypes_{kind}.csv")
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
