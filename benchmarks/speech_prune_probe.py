"""Why per-layer Fine-Pruning collapses the trained speech model: the same pruning in Keras, varied one way at a time.

For a model saved by `python -m tflite_fineprune.converters.speech train --keras` (e.g. by
`benchmarks/speech_train.py --widths 2 --personalize -- --keras W2.keras`), on the
12 held-out speakers of benchmarks/speech_train.py (same seed, same 50/50 split of
each speaker's clips): observe the adaptation half, mask `--rate` of the units of
each chosen layer after its ReLU (as the exported `prune` does; the test
`test_pruned_export_of_trained_model_matches_keras_with_the_same_masks` checks the
.tflite does exactly this), score the evaluation half. Rows:

* least active — the exported policy (fraction of positions > 0);
* random — the control: is the activity ranking better than chance?
* least active + mean fill — pruned units emit their adaptation-half mean instead of 0;
* least active + BN re-estimated — every BN's statistics re-measured on the adaptation
  half through the pruned network (a label-free repair the exported model does not do);
* dense + BN re-estimated — the same re-estimation without pruning (per-speaker AdaBN).

usage: python benchmarks/speech_prune_probe.py MODEL.keras [--rate 0.3] [--layers stem,dw,pw] [--seed 0]
"""

import argparse
import collections
import os
import pathlib
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflite_fineprune.converters.augment  # noqa: E402,F401  (registers the augmentation layers of saved models)
from benchmarks.speech_train import TRAINING_SPEAKERS, dataset, load  # noqa: E402
from tflite_fineprune.converters.speech_training import mfcc_features, pretrained_classifier  # noqa: E402
from tflite_fineprune.demo_data import data_root  # noqa: E402


class MaskedChain:
    """The DS-CNN as a chain of Keras layers, with per-group masks (and optional fills) after each group's ReLU."""

    def __init__(self, classifier):
        self.layers = [layer for layer in classifier.layers if not isinstance(layer, keras.layers.InputLayer)]
        self.norms = [layer for layer in self.layers if isinstance(layer, keras.layers.BatchNormalization)]
        self.trained = [(n.moving_mean.numpy().copy(), n.moving_variance.numpy().copy()) for n in self.norms]

    @staticmethod
    def group_of(layer):
        if not layer.name.endswith("_relu"):
            return None
        return "stem_conv" if layer.name == "stem_relu" else layer.name[:-len("_relu")]

    def run(self, x, masks=None, fill=None, collect=None, reestimate=False):
        for layer in self.layers:
            if reestimate and isinstance(layer, keras.layers.BatchNormalization):
                axes = tuple(range(x.ndim - 1))
                layer.moving_mean.assign(x.mean(axis=axes))
                layer.moving_variance.assign(x.var(axis=axes))
            x = np.asarray(layer(x, training=False))
            group = self.group_of(layer)
            if group is not None:
                if collect is not None:
                    collect[group] = x
                if masks and group in masks:
                    x = x * masks[group] + (0.0 if fill is None else fill[group] * (1.0 - masks[group]))
        return x

    def restore(self):
        for norm, (mean, variance) in zip(self.norms, self.trained):
            norm.moving_mean.assign(mean)
            norm.moving_variance.assign(variance)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--layers", default="stem,dw,pw", help="prune groups whose names start with these")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data")
    args = parser.parse_args()
    chain = MaskedChain(pretrained_classifier(args.model))
    speakers = dataset(data_root(args.data) / "speech_commands_v0.02_test")
    order = list(np.random.default_rng(args.seed).permutation(sorted(speakers)))
    held_out = sorted(order[TRAINING_SPEAKERS:])
    words = sorted({p.parent.name for paths in speakers.values() for p in paths})
    prefixes = tuple(args.layers.split(","))
    scores = collections.defaultdict(list)
    least = []
    for speaker in held_out:
        paths = speakers[speaker]
        seed = zlib.crc32(speaker.encode())
        split = np.random.default_rng(seed).permutation(len(paths))
        half = len(paths) // 2
        adapt = mfcc_features(load([paths[i] for i in split[:half]])[0])
        test_pcm, truth = load([paths[i] for i in split[half:]])
        test, truth = mfcc_features(test_pcm), np.array([words.index(t) for t in truth])

        def score(name, output):
            scores[name].append(float(np.mean(output.argmax(1) == truth)))

        score("dense", chain.run(test))
        observed = {}
        chain.run(adapt, collect=observed)
        activity = {g: (v > 0).mean(axis=(0, 1, 2)) for g, v in observed.items()}
        mean = {g: v.mean(axis=(0, 1, 2)) for g, v in observed.items()}
        least.append(min(a.min() for a in activity.values()))
        rng = np.random.default_rng(seed + 1)

        def masks_by(ranking):
            masks = {}
            for group, values in activity.items():
                if group.startswith(prefixes):
                    mask = np.ones(len(values), np.float32)
                    mask[np.argsort(ranking(group), kind="stable")[:int(np.floor(args.rate * len(values) + 0.5))]] = 0
                    masks[group] = mask
            return masks

        least_active = masks_by(lambda g: activity[g])
        score("least active", chain.run(test, least_active))
        score("random (control)", chain.run(test, masks_by(lambda g: rng.random(len(activity[g])))))
        score("least active + mean fill", chain.run(test, least_active, mean))
        chain.run(adapt, least_active, reestimate=True)
        score("least active + BN re-estimated", chain.run(test, least_active))
        chain.restore()
        chain.run(adapt, reestimate=True)
        score("dense + BN re-estimated", chain.run(test))
        chain.restore()
    print(f"{args.model}: {len(held_out)} held-out speakers (seed {args.seed}), 50 % adaptation / 50 % evaluation; "
          f"pruned {args.rate:.0%} of each of the layers {args.layers}; least active unit active on "
          f"{np.mean(least):.1%} of positions (mean over speakers)")
    for name, values in scores.items():
        print(f"  {name:<32} {np.mean(values):.4f}")


if __name__ == "__main__":
    main()
