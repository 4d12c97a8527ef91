"""Would an EM class-prior correction (Saerens et al. 2002) help? Measured outside the graph.

For each user, the exported model's outputs on the unlabeled adaptation half
give, by EM, the user's class priors; held-out predictions are then reweighted
by (user prior / uniform training prior). This runs in numpy on the
interpreter's outputs — it is not an in-graph option yet; the numbers say
whether it is worth one.

usage: python benchmarks/prior_correction.py [--kinds speech,cifar,fashion] [--iterations 20]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tflite_fineprune import Personalizer  # noqa: E402
from tests.references import em_priors  # noqa: E402
from tflite_fineprune.converters.demo import _fashion, _speech, _vision, find_data  # noqa: E402


def probabilities(outputs, kind):
    if kind == "probabilities":
        return outputs
    z = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="speech,cifar,fashion")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--data")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    builders = {"speech": (_speech, False), "cifar": (_vision, True), "fashion": (_fashion, None)}
    for kind in args.kinds.split(","):
        build, vision = builders[kind]
        root = None if vision is None else find_data(args.data, vision)
        model, users, _, title = build(root, out)
        personalizer = Personalizer(model)
        output_kind = personalizer.metadata.output_kind
        dense, corrected, masked = [], [], []
        for user in users:
            adapt = probabilities(personalizer.predict(user.adapt_x), output_kind)
            held = probabilities(personalizer.predict(user.eval_x), output_kind)
            prior = em_priors(adapt, args.iterations)
            dense.append(np.mean(held.argmax(1) == user.eval_y))
            corrected.append(np.mean((held * prior).argmax(1) == user.eval_y))
            frequent = np.bincount(adapt.argmax(1), minlength=adapt.shape[1]) / len(adapt) >= 0.10
            masked.append(np.mean((held * frequent).argmax(1) == user.eval_y))
        worst = max(1, len(users) // 10)
        print(f"{title}: {len(users)} users, EM {args.iterations} iterations")
        for name, values in (("dense", dense), ("EM prior correction", corrected), ("classes <10% masked", masked)):
            values = np.array(values)
            print(f"  {name:<22} mean {values.mean():.3f}  worst decile {np.sort(values)[:worst].mean():.3f}  "
                  f"helped/hurt {np.sum(values > np.array(dense))}/{np.sum(values < np.array(dense))}")


if __name__ == "__main__":
    main()
