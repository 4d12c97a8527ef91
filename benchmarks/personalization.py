"""Which personalization settings help which users? The exploration behind the demo's defaults.

For each user kind — Speech Commands speakers (MLPerf DS-CNN), CIFAR-10
class subsets (MLPerf ResNet-8), Fashion-MNIST class subsets (784-1024-1024
MLP, trained first) — exports the model with the per-layer policy, the global
policy, and the per-layer policy with mean compensation, and evaluates a grid
of recipes per user.

usage: python benchmarks/personalization.py [--kinds speech,cifar,fashion] [--out DIR]
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.converters.demo import _fashion, _speech, _vision, find_data  # noqa: E402
from tflite_fineprune.converters.evaluation import Recipe, evaluate_users, format_summary, summarize, write_csv  # noqa: E402

COMPACT = (
    Recipe("prune 2%", 0.02),
    Recipe("random 2% (control)", 0.02, random=True),
    Recipe("prune 2% in 2 steps", 0.02, steps=2),
    Recipe("prune 5%", 0.05),
    Recipe("classes <5%", 0, 0.05),
    Recipe("classes <10%", 0, 0.10),
)
OVERPARAMETERIZED = (
    Recipe("prune 50%", 0.5),
    Recipe("random 50% (control)", 0.5, random=True),
    Recipe("prune 50% in 3 steps", 0.5, steps=3),
    Recipe("prune 50%, first layer kept", 0.5, protect=("hidden1",)),
    Recipe("prune 70%", 0.7),
    Recipe("prune 90%", 0.9),
    Recipe("classes <10%", 0, 0.10),
    Recipe("prune 50% + classes <10%", 0.5, 0.10),
)
KINDS = {"speech": (_speech, COMPACT, False), "cifar": (_vision, COMPACT, True),
         "fashion": (_fashion, OVERPARAMETERIZED, None)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="speech,cifar,fashion")
    parser.add_argument("--data")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds.split(","):
        build, recipes, vision = KINDS[kind]
        start = time.perf_counter()
        root = None if vision is None else find_data(args.data, vision)
        model, users, _, title = build(root, out)
        print(f"\n=== {title}: {len(users)} users")
        for policy in ("layerwise", "global", "layerwise+mean"):
            path = model
            if policy != "layerwise":
                path = out / f"{kind}_{policy.replace('+', '_')}.tflite"
                _export_variant(kind, out, path, root, policy="global" if policy == "global" else "layerwise",
                                mean_compensation=policy.endswith("mean"))
            rows = evaluate_users(Personalizer(path), users, recipes, progress=False)
            write_csv(rows, out / f"{kind}_{policy}.csv")
            print(f"\n{policy} policy:")
            print(format_summary(summarize(rows)))
        print(f"({time.perf_counter() - start:.0f} s)")


def _export_variant(kind, out, path, root, **options):
    if kind == "speech":
        from tflite_fineprune.converters.speech import export_mlperf

        export_mlperf(path, root, prune_outputs=True, **options)
    elif kind == "cifar":
        from tflite_fineprune.converters.vision import export_mlperf

        export_mlperf(path, root, prune_outputs=True, **options)
    else:
        from tflite_fineprune.converters.fashion import export_fashion_mlp

        export_fashion_mlp(path, out / "fashion_mlp.keras", prune_outputs=True, **options)


if __name__ == "__main__":
    main()
