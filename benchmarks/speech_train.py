"""The speech `train` recipe on new speakers: a 10-word, 30-speaker set from the Speech Commands v0.02 test split.

Dataset: the 10 command words (down go left no off on right stop up yes), the 30
speakers with the most clips of them (ties broken by id); 18 speakers (chosen with
`--seed`) are the training data — the recipe splits its validation speakers off
those — and 12 are held out. For each `--widths` value it runs

    python -m tflite_fineprune.converters.speech train DIR -o MODEL.tflite --holdout-speakers <12 ids> \
        --width W [EXTRA...]

(which prints its own report) and scores the exported `.tflite` on the held-out
speakers' clips through the TFLite interpreter. Options after `--` go to the
train command (e.g. `-- --no-bn-recalibration`).

With `--personalize`, each held-out speaker's clips are split 50/50 (adaptation /
evaluation); the widest model observes the adaptation half without labels and is
pruned per layer by 30 % and 50 % (least active units first), by 30 % at random
(the control for the activity ranking), and personalized by `Personalizer.personalize`
(`auto`, the default label-free recipe); the evaluation half is scored each way.

usage: python benchmarks/speech_train.py [--widths 1 2] [--seed 0] [--personalize] [--pretrained-baseline DIR]
       [-- TRAIN OPTIONS]
"""

import argparse
import collections
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune.demo_data import data_root  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.datafiles import fit_audio, load_audio  # noqa: E402

WORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
SPEAKERS = 30
TRAINING_SPEAKERS = 18


def dataset(root):
    """{speaker: [paths]} of the 30 speakers with the most command-word clips."""
    by_speaker = collections.defaultdict(list)
    for word in WORDS:
        for path in sorted((root / word).glob("*.wav")):
            by_speaker[re.match(r"([0-9a-f]{8})_nohash_", path.name).group(1)].append(path)
    ranked = sorted(by_speaker, key=lambda s: (-len(by_speaker[s]), s))[:SPEAKERS]
    return {s: by_speaker[s] for s in ranked}


def load(paths):
    return (np.stack([fit_audio(p, *load_audio(p), (16000,), 16000) for p in paths]),
            np.array([p.parent.name for p in paths]))


def random_masks(personalizer, rate, rng):
    """The state with `rate` of each hidden layer's units masked at random (the control for activity ranking)."""
    state = personalizer.get_state()
    for group in personalizer.metadata.hidden_groups:
        pruned = rng.permutation(group.units)[:int(np.floor(rate * group.units + 0.5))]
        state.masks[group.offset + pruned] = 0.0
    return state


def personalize(model, speakers, rates=(0.3, 0.5), load=load):
    """Per row (dense, pruned, random control, auto): mean evaluation-half accuracy over speakers, mean weights
    removed, mean accuracy of the worst decile of speakers (at least one); and the mean least hidden-unit activity.

    `load(paths)` gives (clips, labels); the default reads the label from each clip's folder name.
    """
    personalizer = Personalizer(model)
    labels = np.array(personalizer.labels)
    scores, removed = collections.defaultdict(list), collections.defaultdict(list)
    least_activity = []
    for speaker, paths in speakers.items():
        seed = zlib.crc32(speaker.encode())
        order = np.random.default_rng(seed).permutation(len(paths))
        half = len(paths) // 2
        adapt, _ = load([paths[i] for i in order[:half]])
        test, truth = load([paths[i] for i in order[half:]])

        def score(name):
            scores[name].append(np.mean(labels[personalizer.predict(test).argmax(1)] == truth))
            removed[name].append(personalizer.sparsity().weights)

        personalizer.reset()
        score("dense")
        personalizer.observe(adapt)
        state = personalizer.get_state()
        hidden = np.concatenate([state.counts[g.offset:g.offset + g.units]
                                 for g in personalizer.metadata.hidden_groups])
        least_activity.append(hidden.min() / state.samples)
        for rate in rates:
            personalizer.reset(counts=False, masks=True)
            personalizer.prune(rate)
            score(f"pruned {rate:.0%}")
        personalizer.reset(counts=False, masks=True)
        personalizer.set_state(random_masks(personalizer, rates[0], np.random.default_rng(seed + 1)))
        score(f"random {rates[0]:.0%} (control)")
        personalizer.personalize(adapt)
        score("auto")
    worst = max(1, len(speakers) // 10)  # the worst decile of users (at least one)
    return ({name: (float(np.mean(values)), float(np.mean(removed[name])), float(np.mean(np.sort(values)[:worst])))
             for name, values in scores.items()}, float(np.mean(least_activity)))


def pretrained_baseline(saved_model, pcm, truth):
    """The pretrained 12-class MLPerf model, not fine-tuned, on the held-out clips (Keras, same MFCC front-end)."""
    from tflite_fineprune.converters.speech import KWS_LABELS, load_mlperf_ds_cnn, with_frontend

    probabilities = with_frontend(load_mlperf_ds_cnn(saved_model)).predict(pcm, batch_size=256, verbose=0)
    all_classes = np.array(KWS_LABELS)[probabilities.argmax(1)]
    words = np.array(WORDS)[probabilities[:, [KWS_LABELS.index(w) for w in WORDS]].argmax(1)]
    return (f"pretrained {saved_model} as it is (no fine-tuning): held-out-speaker accuracy "
            f"{np.mean(all_classes == truth):.4f} over its 12 outputs, {np.mean(words == truth):.4f} restricted to "
            f"the 10 words ({len(truth)} clips)")


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0, help="which 18 of the 30 speakers train")
    parser.add_argument("--personalize", action="store_true")
    parser.add_argument("--data")
    parser.add_argument("--pretrained-baseline", metavar="SAVEDMODEL",
                        help="also score this MLPerf Tiny KWS SavedModel as it is on the held-out speakers (its 12 "
                        "outputs, and restricted to the 10 words): what fine-tuning it (`-- --init-from`) must beat")
    args = parser.parse_args(argv)
    root = data_root(args.data) / "speech_commands_v0.02_test"
    speakers = dataset(root)
    order = list(np.random.default_rng(args.seed).permutation(sorted(speakers)))
    held_out = sorted(order[TRAINING_SPEAKERS:])
    test_paths = [p for s in held_out for p in speakers[s]]
    pcm, truth = load(test_paths)
    summary = []
    if args.pretrained_baseline:
        summary.append(pretrained_baseline(args.pretrained_baseline, pcm, truth))
        print(summary[-1], flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        data = pathlib.Path(workdir) / "data"
        for paths in speakers.values():
            for path in paths:
                (data / path.parent.name).mkdir(parents=True, exist_ok=True)
                os.symlink(path, data / path.parent.name / path.name)
        for width in args.widths:
            model = pathlib.Path(workdir) / f"kws-w{width:g}.tflite"
            command = [sys.executable, "-m", "tflite_fineprune.converters.speech", "train", str(data), "-o", str(model),
                       "--holdout-speakers", ",".join(held_out), "--width", f"{width:g}", "--seed", str(args.seed),
                       *extra]
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, check=True, cwd=REPO)
            personalizer = Personalizer(model)
            predicted = np.array(personalizer.labels)[personalizer.predict(pcm).argmax(1)]
            summary.append(f"width {width:g}: held-out-speaker accuracy {np.mean(predicted == truth):.4f} "
                           f"({len(truth)} clips, 12 speakers; .tflite through the interpreter)")
            print(summary[-1], flush=True)
        if args.personalize:
            scores, least = personalize(model, {s: speakers[s] for s in held_out})
            summary.append(f"width {args.widths[-1]:g}, per held-out speaker (50 % adaptation / 50 % evaluation; "
                           f"mean over 12 speakers; least active hidden unit active on {least:.1%} of positions):")
            summary += [f"  {name:<22} accuracy {accuracy:.4f}   worst decile {worst:.4f}   "
                        f"weights removed {weights:.1%}"
                        for name, (accuracy, weights, worst) in scores.items()]
    n_train = sum(len(speakers[s]) for s in order[:TRAINING_SPEAKERS])
    print(f"\nSpeech Commands v0.02 test split, {len(WORDS)} words, {SPEAKERS} speakers: {TRAINING_SPEAKERS} train "
          f"({n_train} clips, validation speakers split off by the recipe), 12 held out; seed {args.seed}; "
          f"train options: {' '.join(extra) or '(defaults)'}")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
