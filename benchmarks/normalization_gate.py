"""Step 4's coverage gate: when should `personalize` shift the BatchNorm statistics toward a user's data?

The relative BN shift corrects a change of speaker or microphone, but a user who meets only a few classes also
moves the statistics, and with too few samples for the class test to exclude anything the shift reads that class
subset as a domain shift. `AutoRule.normalization_min_coverage` shifts only when the predictions spread over at
least that share of the classes a user of every class would show with as many samples (`auto_recipe.class_coverage`).

For each kind (`cifar`: the vision demo's class-subset users; `speech`: the demo's speakers) and population
(`small`: 3–25 adaptation samples, `medium`: 50–150, `demo`: the demo's own; benchmarks/stopping_rule.py builds
them), each user is personalized with the default rule (step 5 off: it prunes nothing on these compact models),
with the gate off (`normalization_min_coverage=0`, the shift whenever no class was excluded) and with no shift at
all; printed: mean and worst decile of the held-out accuracy minus dense, in points.

usage: python benchmarks/normalization_gate.py [cifar] [speech]
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import stopping_rule  # noqa: E402
from tflite_fineprune.converters.evaluation import Recipe, evaluate_users  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.auto_recipe import AutoRule  # noqa: E402

RECIPES = (
    Recipe("gate (default)", rule=AutoRule(magnitude_agreement=2.0)),
    Recipe("no gate", rule=AutoRule(magnitude_agreement=2.0, normalization_min_coverage=0.0)),
    Recipe("no BN shift", rule=AutoRule(magnitude_agreement=2.0, normalization_strength=0.0)),
)


def main(kinds):
    out = pathlib.Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'kind':7} {'population':10} {'users':>5} {'dense':>6}  " + "  ".join(f"{r.name:>18}" for r in RECIPES))
    print(f"{'':38}" + "  ".join(f"{'mean / worst10%':>18}" for _ in RECIPES))
    for kind in kinds:
        path, users, by_class, per_class = stopping_rule._model_and_users(kind, out)
        personalizer = Personalizer(path)
        for name, members in stopping_rule.populations(["small", "medium", "demo"], users, by_class,
                                                       per_class).items():
            rows = evaluate_users(personalizer, members, RECIPES, others_per_user=0, progress=False)
            names = list(dict.fromkeys(r["user"] for r in rows))
            by = {(r["user"], r["recipe"]): r for r in rows}
            dense = np.array([by[u, RECIPES[0].name]["dense_accuracy"] for u in names])
            worst = max(1, int(round(0.1 * len(names))))
            cells = []
            for recipe in RECIPES:
                accuracy = np.array([by[u, recipe.name]["accuracy"] for u in names])
                cells.append(f"{(accuracy.mean() - dense.mean()) * 100:+7.1f} / "
                             f"{(np.sort(accuracy)[:worst].mean() - np.sort(dense)[:worst].mean()) * 100:+6.1f}")
            print(f"{kind:7} {name:10} {len(names):5d} {dense.mean():6.3f}  " + "  ".join(f"{c:>18}" for c in cells),
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["cifar", "speech"])
