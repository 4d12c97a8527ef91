"""Does the label-free `personalize` (auto) help every kind of user, and what does each new lever do alone?

Per kind of user — Speech Commands speakers (MLPerf DS-CNN), CIFAR-10
class-subset users (MLPerf ResNet-8), Fashion-MNIST class-subset users
(784-1024-1024 MLP) — rows: dense, auto, the demo's hand-picked recipes, and
each lever alone (relative BN shift, dormant-unit pruning, the binomial class
test). Reference pools for the BN statistics never contain a user's data:
speech = test clips of speakers with < 30 clips (users have ≥ 30); CIFAR =
the first 100 test images of each class (users are drawn from the rest).

usage: python benchmarks/auto.py [--kinds fashion,cifar,speech] [--users N] [--out DIR] [--couple-depthwise]

--couple-depthwise exports the DS-CNN (and ResNet-8, which has no depthwise
layers) with `couple_depthwise=True`: a pointwise layer and the depthwise
layer after it share their units.
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tflite_fineprune.converters import demo  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.converters.evaluation import (Recipe, class_subset_users, evaluate_users, format_summary,  # noqa: E402
                                         speaker_users, summarize, write_csv)
from tflite_fineprune.auto_recipe import AutoRule  # noqa: E402

AUTO = AutoRule()
NO_SEARCH = 2.0  # magnitude_agreement > 1: step 5 (how far to prune) off
NO_CLASSES = dict(class_alpha=0.0, magnitude_agreement=NO_SEARCH)
LEVERS = (  # the demo's recipes (first: "auto (default)") come before these
    Recipe("auto, class share 0.75", rule=dataclasses.replace(AUTO, class_share=0.75)),
    Recipe("class test alone", rule=dataclasses.replace(AUTO, dormant_threshold=0.0, normalization_strength=0.0,
                                                        magnitude_agreement=NO_SEARCH)),
    Recipe("auto without step 5", rule=dataclasses.replace(AUTO, magnitude_agreement=NO_SEARCH)),
    Recipe("dormant <0.01 alone", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.01, normalization_strength=0.0)),
    Recipe("dormant <0.05 alone", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.05, normalization_strength=0.0)),
)
NORMALIZATION = (
    Recipe("relative BN 0.3, 1 pass", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.0, normalization_passes=1)),
    Recipe("relative BN 1.0, 1 pass", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.0, normalization_strength=1.0,
                                                    normalization_passes=1)),
    Recipe("relative BN 0.3, 3 passes", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.0, normalization_passes=3)),
    Recipe("relative BN 1.0, 9 passes", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.0, normalization_strength=1.0,
                                                      normalization_passes=9)),
)
CIFAR_REFERENCE_PER_CLASS = 100


def _speech(root, out, users_wanted, **export_options):
    from tflite_fineprune.converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
    from tflite_fineprune.converters.speech import KWS_LABELS, export_mlperf
    from tflite_fineprune.datafiles import fit_audio, load_audio

    def load_clip(path):
        return fit_audio(path, *load_audio(path), (CLIP_SAMPLES,), SAMPLE_RATE)

    test = root / demo.SPEECH_DATA[0]
    model = out / "kws_ds_cnn_auto.tflite"
    # BN reference: tflite_fineprune.converters.speech.reference_pool (speakers < 30 clips)
    print(export_mlperf(model, root, **export_options))
    users = speaker_users(test, list(KWS_LABELS), load_clip)[:users_wanted]
    return model, users, demo.SPEECH_RECIPES + LEVERS + NORMALIZATION


def _cifar(root, out, users_wanted, **export_options):
    from tflite_fineprune.converters.vision import cifar_by_class, export_mlperf

    by_class = cifar_by_class(root)
    reference = np.concatenate([images[:CIFAR_REFERENCE_PER_CLASS] for images in by_class])
    model = out / "resnet8_auto.tflite"
    print(export_mlperf(model, root, reference_data=reference, **export_options))
    users = class_subset_users([images[CIFAR_REFERENCE_PER_CLASS:] for images in by_class])[:users_wanted]
    return model, users, demo.VISION_RECIPES + LEVERS + NORMALIZATION


def _fashion(root, out, users_wanted):
    from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

    model = out / "fashion_mlp_auto.tflite"
    report, _ = export_fashion_mlp(model, out / "fashion_mlp.keras")
    print(report)
    x, y = load_fashion_mnist("test")
    users = class_subset_users([x[y == c] for c in range(10)], adapt_per_class=100, eval_per_class=100)
    return model, users[:users_wanted], demo.FASHION_RECIPES + LEVERS + (
        Recipe("dormant <0.1 alone", rule=AutoRule(**NO_CLASSES, dormant_threshold=0.1)),)


KINDS = {"speech": (_speech, True), "cifar": (_cifar, True), "fashion": (_fashion, False)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="fashion,cifar,speech")
    parser.add_argument("--data")
    parser.add_argument("--users", type=int, default=10 ** 6, help="evaluate only the first N users (development)")
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--only", help="evaluate only the recipes whose name contains this text")
    parser.add_argument("--couple-depthwise", action="store_true", help="export with couple_depthwise=True")
    args = parser.parse_args()
    export_options = {"couple_depthwise": True} if args.couple_depthwise else {}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds.split(","):
        build, needs_data = KINDS[kind]
        start = time.perf_counter()
        root = demo.find_data(args.data, kind == "cifar") if needs_data else None
        model, users, recipes = build(root, out, args.users, **(export_options if needs_data else {}))
        recipes = [r for r in recipes if not args.only or args.only in r.name]
        print(f"\n=== {kind}: {len(users)} users; auto = {AUTO}")
        rows = evaluate_users(Personalizer(model), users, recipes, others_per_user=100, progress=False)
        print(format_summary(summarize(rows)))
        write_csv(rows, out / f"auto_{kind}.csv")
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
