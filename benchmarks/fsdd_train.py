"""The speech `train` recipe on FSDD: train on 5 speakers' spoken digits, evaluate on the 6th.

Builds DATA_DIR/<digit>/ folders (links) for the five training speakers, runs
`python -m tflite_fineprune.converters.speech train` on them, then scores the exported `.tflite`
on every clip of the held-out speaker through the TFLite interpreter. The recipe
splits one of the five training speakers off for validation (early stopping).
Options after `--` go to the train command (e.g. `-- --width 2` or
`-- --no-augment --no-bn-recalibration`).

With `--personalize`, each held-out speaker is also a user: their clips are
split 50/50 (adaptation without labels / evaluation), and the per-user rows of
`benchmarks/speech_train.py --personalize` are printed (dense, fixed-rate
pruning, a random control, `auto`). `--held-out` takes several speakers
(comma-separated) for that.

usage: python benchmarks/fsdd_train.py [--held-out theo[,jackson...]] [--personalize] [--data DIR] [-- TRAIN OPTIONS]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune.demo_data import data_root  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.datafiles import fit_audio, load_audio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", default="theo", help="speaker(s), comma-separated")
    parser.add_argument("--personalize", action="store_true", help="per-user rows for the held-out speakers")
    parser.add_argument("--model", help="score (and personalize) this trained .tflite instead of training one")
    parser.add_argument("--keep", metavar="DIR", help="write the trained digits.tflite to DIR instead of a temp dir")
    parser.add_argument("--data")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    recordings = data_root(args.data) / "fsdd" / "recordings"
    files = sorted(recordings.glob("*.wav"))
    speakers = sorted({f.stem.split("_")[1] for f in files})
    held_out = args.held_out.split(",")
    unknown = sorted(set(held_out) - set(speakers))
    if unknown:
        parser.error(f"--held-out: no FSDD speaker {', '.join(unknown)}; the speakers are {', '.join(speakers)}")
    with tempfile.TemporaryDirectory() as workdir:
        train_dir = pathlib.Path(workdir) / "train"
        for f in files:
            digit, speaker, _ = f.stem.split("_")
            if speaker not in held_out:
                (train_dir / digit).mkdir(parents=True, exist_ok=True)
                os.symlink(f, train_dir / digit / f.name)
        model = pathlib.Path(args.keep or workdir) / "digits.tflite"
        if args.model:
            model = pathlib.Path(args.model)
        else:
            command = [sys.executable, "-m", "tflite_fineprune.converters.speech", "train", str(train_dir),
                       "-o", str(model), *extra]
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, check=True, cwd=REPO)
        test = [f for f in files if f.stem.split("_")[1] in held_out]
        pcm = np.stack([fit_audio(f, *load_audio(f), (16000,), 16000) for f in test])
        truth = np.array([f.stem.split("_")[0] for f in test])
        personalizer = Personalizer(model)
        predicted = np.array(personalizer.labels)[personalizer.predict(pcm).argmax(1)]
        print(f"FSDD: trained on {', '.join(s for s in speakers if s not in held_out)} "
              f"({len(files) - len(test)} clips; train options: {' '.join(extra) or '(defaults)'}); held-out "
              f"speaker(s) {', '.join(held_out)}: accuracy {np.mean(predicted == truth):.4f} on {len(test)} clips "
              "(raw 8 kHz audio resampled to 16 kHz)", flush=True)
        if args.personalize:
            from speech_train import personalize  # the same per-user rows as the Speech Commands recipe

            by_speaker = {s: [f for f in test if f.stem.split("_")[1] == s] for s in held_out}
            rows, least = personalize(model, by_speaker, load=lambda paths: (
                np.stack([fit_audio(f, *load_audio(f), (16000,), 16000) for f in paths]),
                np.array([f.stem.split("_")[0] for f in paths])))
            print(f"per held-out speaker ({len(held_out)}; 50/50 adaptation/evaluation; mean least hidden-unit "
                  f"activity {least:.3f}):")
            for name, (accuracy, weights, worst) in rows.items():
                print(f"  {name:<22} accuracy {accuracy:.4f}  worst speaker {worst:.4f}  weights removed {weights:.1%}")


if __name__ == "__main__":
    main()
