"""Wall-clock time to export keras.applications.ResNet50(weights=None) (goal <= 60 s), and what
checking the file's SHA-256 costs when it is opened.

usage: python benchmarks/export_time.py [--runs 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tflite_fineprune import Personalizer, export_model  # noqa: E402
from tflite_fineprune.metadata import read_model_file  # noqa: E402


def median_seconds(action, repeats=7):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    model = keras.applications.ResNet50(weights=None)
    print(f"built ResNet50 ({model.count_params():,} weights) in {time.perf_counter() - start:.1f} s")
    times = []
    with tempfile.TemporaryDirectory() as workdir:
        for run in range(args.runs):
            path = os.path.join(workdir, f"resnet50-{run}.tflite")
            start = time.perf_counter()
            report = export_model(model, path)
            times.append(time.perf_counter() - start)
            print(f"run {run + 1}: {times[-1]:.1f} s (includes the Keras-vs-TFLite check); {report}")
        checked = median_seconds(lambda: read_model_file(path))
        unchecked = median_seconds(lambda: read_model_file(path, verify=False))
        opened = median_seconds(lambda: Personalizer(path))
        print(f"opening the {os.path.getsize(path) / 1e6:.0f} MB file: read + metadata {unchecked * 1e3:.0f} ms, "
              f"+ SHA-256 check {1e3 * (checked - unchecked):.0f} ms; Personalizer(path) {opened * 1e3:.0f} ms "
              "(medians of 7)")
    print(f"export time ResNet50: median {statistics.median(times):.1f} s over {len(times)} runs (goal <= 60 s), "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
