"""Which label-free pruning score, and how far to prune: the evidence behind `personalize`'s step 5.

Per user: `personalize` with step 5 off (class test, dormant units, BN shift: the reference), then, on top of
its masks, each hidden layer's lowest-scoring live units are pruned to a rate r, for every rate of
`auto_recipe.SPARSITY_STEPS`, by three scores:

* activity — how often a unit is active (the paper's criterion; the `prune` signature);
* mean |activation| — from the `magnitudes` the model counts (masks set from the host);
* magnitude — mean |activation| × outgoing weight norm, next BatchNorm folded (`prune_magnitude`).

For each it records the accuracy on the user's held-out half, the MACs removed and the agreement with the
reference's predictions on the user's own unlabeled adaptation samples, then prints, per score and per
agreement threshold τ, what the stopping rule (the largest rate whose agreement stays ≥ τ, stopping at the
first that does not) would give: mean accuracy change versus the reference, worst user, users who lose more
than a point, MACs removed.

usage: python benchmarks/stopping_probe.py {fashion,cifar,speech} [--users N] [--out DIR]
"""

import argparse
import dataclasses
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tflite_fineprune.auto_recipe import SPARSITY_STEPS, AutoRule  # noqa: E402

SCORES = ("activity", "mean |activation|", "magnitude")
THRESHOLDS = (0.97, 0.98, 0.99, 0.995, 1.0)
REFERENCE_RULE = AutoRule(magnitude_agreement=2.0)  # > 1: step 5 off


def host_masks(state, metadata, scores, rate):
    """`prune`'s layerwise policy from the host: each hidden layer's lowest live scores pruned to `rate`."""
    masks = state.masks.copy()
    for g in metadata.hidden_groups:
        part = slice(g.offset, g.offset + g.units)
        live = masks[part] > 0.5
        count = min(max(int(g.units - live.sum()), int(np.floor(rate * g.units + 0.5))), g.units - 1)
        order = np.argsort(np.where(live, scores[part], -1.0), kind="stable")
        masks[part] = 1.0
        masks[part][order[:count]] = 0.0
    return masks


def measure_user(personalizer, user):
    """{score: [(rate, accuracy, agreement, macs removed)]} for one user, rate 0 being the reference."""
    personalizer.personalize(user.adapt_x, REFERENCE_RULE, progress=False)
    base = personalizer.get_state()
    reference = np.argmax(personalizer.predict(user.adapt_x), -1)

    def row(rate):
        agreement = float(np.mean(np.argmax(personalizer.predict(user.adapt_x), -1) == reference))
        accuracy = float(np.mean(np.argmax(personalizer.predict(user.eval_x), -1) == user.eval_y))
        return rate, accuracy, agreement, personalizer.sparsity().macs

    rows = {score: [row(0.0)] for score in SCORES}
    mean_activation = base.magnitudes / max(base.samples, 1.0)
    for rate in SPARSITY_STEPS:
        for score in SCORES:
            if score == "activity":
                personalizer.prune(rate)
            elif score == "magnitude":
                personalizer.prune_magnitude(rate)
            else:
                personalizer.set_state(dataclasses.replace(
                    base, masks=host_masks(base, personalizer.metadata, mean_activation, rate)))
            rows[score].append(row(rate))
            personalizer.set_state(base)
    return rows


def stop(rows, threshold):
    """The row the stopping rule picks: the largest rate before the first whose agreement falls below τ."""
    chosen = rows[0]
    for entry in rows[1:]:
        if entry[2] < threshold:
            break
        chosen = entry
    return chosen


def summarize(per_user):
    print(f"{'score':20} {'τ':>6} {'accuracy':>9} {'change':>7} {'worst':>6} {'lose>1pt':>8} {'MACs':>6}")
    for score in SCORES:
        base = np.array([rows[score][0][1] for rows in per_user])
        for threshold in THRESHOLDS:
            picked = [stop(rows[score], threshold) for rows in per_user]
            accuracy = np.array([p[1] for p in picked])
            change = (accuracy - base) * 100
            print(f"{score:20} {threshold:6.3f} {accuracy.mean():9.4f} {change.mean():+7.2f} {change.min():+6.1f} "
                  f"{int(np.sum(change < -1)):8d} {np.mean([p[3] for p in picked]):6.1%}")
        for index, rate in enumerate(SPARSITY_STEPS, start=1):
            if rate in (0.1, 0.3, 0.5, 0.7, 0.8, 0.9):
                fixed = np.array([rows[score][index][1] for rows in per_user])
                print(f"{score:20} {'r=' + format(rate, 'g'):>6} {fixed.mean():9.4f} "
                      f"{(fixed - base).mean() * 100:+7.2f} "
                      f"{(fixed - base).min() * 100:+6.1f} {int(np.sum(fixed - base < -0.01)):8d} "
                      f"{np.mean([rows[score][index][3] for rows in per_user]):6.1%}")
    print(f"reference (step 5 off): {base.mean():.4f} over {len(per_user)} users")


def _users(kind, out):
    """The exported model and the demo's users of this kind (the same splits as `tflite-fineprune demo`)."""
    from tflite_fineprune.converters import demo
    from tflite_fineprune.converters.evaluation import class_subset_users

    if kind == "fashion":
        from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

        path = out / "stopping_fashion.tflite"
        export_fashion_mlp(path, out / "fashion_mlp.keras")
        x, y = load_fashion_mnist("test")
        return path, class_subset_users([x[y == c] for c in range(10)], adapt_per_class=100, eval_per_class=100)
    if kind == "cifar":
        from tflite_fineprune.converters.vision import cifar_by_class, export_mlperf

        root = demo.find_data(None, True)
        path = out / "stopping_resnet8.tflite"
        export_mlperf(path, root)
        return path, demo.vision_users(cifar_by_class(root))
    from tflite_fineprune.converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
    from tflite_fineprune.converters.speech import KWS_LABELS, export_mlperf
    from tflite_fineprune.datafiles import fit_audio, load_audio

    root = demo.find_data(None, False)
    path = out / "stopping_kws.tflite"
    export_mlperf(path, root)
    return path, demo.speech_users(root, list(KWS_LABELS),
                                   lambda f: fit_audio(f, *load_audio(f), (CLIP_SAMPLES,), SAMPLE_RATE))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["fashion", "cifar", "speech"])
    parser.add_argument("--users", type=int, default=10 ** 6, help="only the first N users (development)")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, users = _users(args.kind, out)
    from tflite_fineprune import Personalizer

    personalizer = Personalizer(path)
    per_user = [measure_user(personalizer, user) for user in users[:args.users]]
    summarize(per_user)


if __name__ == "__main__":
    main()
