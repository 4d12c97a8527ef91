"""Quick start: personalize the MLPerf Tiny ResNet-8 for a user who only meets cats and dogs.

Exports the pretrained CIFAR-10 ResNet-8 to a personalizable `.tflite`, then,
through the TFLite interpreter only, lets the user's unlabeled photos decide
which units and classes to prune, and reports accuracy before and after on
held-out photos of the same classes.

usage: python examples/quickstart.py [--data DIR] [--out DIR] [--classes cat,dog]
"""

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tflite_fineprune import Personalizer, export_model  # noqa: E402
from tflite_fineprune.datafiles import load_image  # noqa: E402
from tflite_fineprune.errors import FinePruneError  # noqa: E402
from tflite_fineprune.demo_data import CIFAR10_LABELS as CLASSES  # noqa: E402
from tflite_fineprune.demo_data import CIFAR10_TEST, MLPERF_RESNET8 as MODEL, require_data  # noqa: E402


def find_data(given):
    try:
        return require_data((MODEL, CIFAR10_TEST), given, "quickstart")
    except FinePruneError as exc:
        sys.exit(f"quickstart: {exc}")


def images(root, classes, start, count):
    x, y = [], []
    for name in classes:
        for path in sorted((root / CIFAR10_TEST / name).glob("*.jpg"))[start:start + count]:
            x.append(load_image(str(path), (32, 32, 3)))
            y.append(CLASSES.index(name))
    return np.stack(x), np.array(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--out", default="quickstart-out")
    parser.add_argument("--classes", default="cat,dog")
    args = parser.parse_args()
    root = find_data(args.data)
    classes = args.classes.split(",")
    out = pathlib.Path(args.out)
    out.mkdir(exist_ok=True)

    model_path = out / "resnet8.tflite"
    report = export_model(str(root / MODEL), model_path, labels=CLASSES, prune_outputs=True)
    print(report)

    adapt, _ = images(root, classes, 0, 200)  # the user's unlabeled photos
    test_x, test_y = images(root, classes, 500, 200)  # held out, never observed
    settings = [("dense model", 0.0, None), ("prune unseen classes", 0.0, 0.02),
                ("+ 5% least active channels", 0.05, 0.02), ("+ 10% least active channels", 0.10, 0.02)]
    print(f"\nuser sees {', '.join(classes)}: {len(adapt)} unlabeled photos observed, {len(test_x)} held out")
    print(f"{'setting':<30} {'accuracy':>9} {'units':>6} {'weights':>8} {'MACs':>6}")
    for name, sparsity, min_fraction in settings:
        user = Personalizer(model_path)
        user.observe(adapt)
        if sparsity:
            user.prune(sparsity)
        if min_fraction is not None:
            user.prune_outputs(min_fraction)
        accuracy = float(np.mean(user.predict(test_x).argmax(1) == test_y))
        s = user.sparsity()
        print(f"{name:<30} {accuracy:>9.3f} {s.units:>6.1%} {s.weights:>8.1%} {s.macs:>6.1%}")
        user.save_state(out / f"user-{sparsity}-{min_fraction}.state")
    print(f"\nmodel and user states in {out}/; try: tflite-fineprune inspect {model_path}")


if __name__ == "__main__":
    main()
