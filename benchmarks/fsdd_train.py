"""The speech `train` recipe on FSDD: train on 5 speakers' spoken digits, evaluate on the 6th.

Builds DATA_DIR/<digit>/ folders (links) for the five training speakers, runs
`python -m converters.speech train` on them, then scores the exported `.tflite`
on every clip of the held-out speaker through the TFLite interpreter. The recipe
splits one of the five training speakers off for validation (early stopping).
Options after `--` go to the train command (e.g. `-- --width 2` or
`-- --no-augment --no-bn-recalibration`).

usage: python benchmarks/fsdd_train.py [--held-out theo] [--data DIR] [-- TRAIN OPTIONS]
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

from tflite_fineprune.reference_data import data_root  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.datafiles import fit_audio, load_audio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", default="theo")
    parser.add_argument("--data")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    recordings = data_root(args.data) / "fsdd" / "recordings"
    files = sorted(recordings.glob("*.wav"))
    speakers = sorted({f.stem.split("_")[1] for f in files})
    with tempfile.TemporaryDirectory() as workdir:
        train_dir = pathlib.Path(workdir) / "train"
        for f in files:
            digit, speaker, _ = f.stem.split("_")
            if speaker != args.held_out:
                (train_dir / digit).mkdir(parents=True, exist_ok=True)
                os.symlink(f, train_dir / digit / f.name)
        model = pathlib.Path(workdir) / "digits.tflite"
        command = [sys.executable, "-m", "converters.speech", "train", str(train_dir), "-o", str(model), *extra]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, cwd=REPO)
        test = [f for f in files if f.stem.split("_")[1] == args.held_out]
        pcm = np.stack([fit_audio(f, *load_audio(f), (16000,), 16000) for f in test])
        truth = np.array([f.stem.split("_")[0] for f in test])
        personalizer = Personalizer(model)
        predicted = np.array(personalizer.labels)[personalizer.predict(pcm).argmax(1)]
    print(f"FSDD: trained on {', '.join(s for s in speakers if s != args.held_out)} "
          f"({len(files) - len(test)} clips; train options: {' '.join(extra) or '(defaults)'}); held-out speaker {args.held_out}: "
          f"accuracy {np.mean(predicted == truth):.4f} on {len(test)} clips (raw 8 kHz audio resampled to 16 kHz)")


if __name__ == "__main__":
    main()
