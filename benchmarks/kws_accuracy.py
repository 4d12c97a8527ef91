"""Accuracy of the exported MLPerf Tiny DS-CNN (front-end inside) on the Speech Commands v0.02 test split.

Runs the `.tflite` through the TFLite interpreter on raw PCM, and the MLPerf
SavedModel on its own training pipeline's features, over all 4,890 clips.

usage: python benchmarks/kws_accuracy.py [--data DIR]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune.demo_data import data_root  # noqa: E402
from tflite_fineprune.converters.speech import MLPERF_KWS, export_mlperf  # noqa: E402
from tests import kws_reference  # noqa: E402
from tests.realdata import read_clip  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    args = parser.parse_args()
    root = data_root(args.data)
    files = sorted((root / "speech_commands_v0.02_test").glob("*/*.wav"))
    pcm = np.stack([read_clip(p) for p in files])
    words = np.array([p.parent.name for p in files])
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "kws.tflite")
        export_mlperf(path, root)
        personalizer = Personalizer(path)
        start = time.perf_counter()
        tflite = personalizer.predict(pcm, batch_size=64)
        seconds = time.perf_counter() - start
    labels = np.array(personalizer.labels)
    features = np.concatenate([kws_reference.tf_signal_mfcc(pcm[i:i + 500]) for i in range(0, len(pcm), 500)])
    saved = kws_reference.savedmodel_predict(root / MLPERF_KWS, features)
    tflite_acc = np.mean(labels[tflite.argmax(1)] == words)
    saved_acc = np.mean(labels[saved.argmax(1)] == words)
    agree = np.mean(tflite.argmax(1) == saved.argmax(1))
    print(f"{len(files)} clips of the Speech Commands v0.02 test split")
    print(f"exported .tflite on raw PCM (LiteRT): accuracy {tflite_acc:.4f} ({seconds:.1f} s, "
          f"{1e3 * seconds / len(files):.2f} ms/clip incl. MFCC)")
    print(f"MLPerf SavedModel on tf.signal features:  accuracy {saved_acc:.4f}")
    print(f"same decision on {agree:.2%} of clips; max |probability difference| {np.abs(tflite - saved).max():.2e}")


if __name__ == "__main__":
    main()
