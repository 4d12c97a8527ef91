"""Median `infer` latency of .tflite files under tflite-runtime (no TensorFlow), as JSON on stdout.

Run by benchmarks/cifar_large.py in the tflite-runtime 2.14 venv. The files are called in turn, call by call,
so that machine load hits all alike; the input is the first `batch` images of INPUTS.npy.

usage: python benchmarks/runtime_latency.py INPUTS.npy [--threads 1] [--repeats 30] [--batches 1,32] FILE...
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
from tflite_runtime.interpreter import Interpreter


def infer_runner(path, threads):
    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner("infer")
    (name,) = runner.get_input_details()
    return lambda x: runner(**{name: x})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()
    sample = np.load(args.inputs)
    runners = [infer_runner(f, args.threads) for f in args.files]
    times = {f: {} for f in args.files}
    for batch in (int(b) for b in args.batches.split(",")):
        x = np.resize(sample, (batch, *sample.shape[1:])).astype(sample.dtype)
        samples = [[] for _ in runners]
        for run in runners:  # warm-up: allocation at this batch size
            run(x)
        for _ in range(args.repeats):
            for i, run in enumerate(runners):
                start = time.perf_counter()
                run(x)
                samples[i].append(time.perf_counter() - start)
        for f, s in zip(args.files, samples):
            times[f][batch] = statistics.median(s)
    assert "tensorflow" not in sys.modules
    json.dump(times, sys.stdout)


if __name__ == "__main__":
    main()
