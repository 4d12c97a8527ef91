"""File size and latency of dense vs masked vs slim models (docs/slim.md quotes this).

For each model: export it, personalize it on real data (observe, prune every
layer to the given unit sparsity), then time under one LiteRT build, in one
process, interleaving the three models call by call (median of repeated calls):

* dense  = the same export slimmed at sparsity 0: the plain `infer` graph, no
  masks, no personalization signatures (what a non-personalized app would ship);
* masked = the export's `infer` signature with the user's masks set;
* slim   = `slim_model` of that state: pruned units physically removed.

MAC and weight fractions come from the metadata (`Personalizer.sparsity()`),
so the time ratio can be compared with the MACs left.

usage: python benchmarks/slim.py [--threads 1] [--repeats 30] [--batches 1,8,32] [--cache DIR] [--only NAME]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.slim import slim_model  # noqa: E402
from tflite_fineprune.state import State  # noqa: E402


def time_calls(calls, repeats):
    """Median seconds per call of each runner, interleaved so that machine load hits all alike."""
    for run in calls:
        run()
        run()
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for i, run in enumerate(calls):
            start = time.perf_counter()
            run()
            samples[i].append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


# -- models and their users' data ---------------------------------------------------


def fashion(workdir, cache):
    from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

    path = os.path.join(workdir, "fashion.tflite")
    export_fashion_mlp(path, keras_path=os.path.join(cache, "fashion_mlp.keras"), verify=False)
    x, y = load_fashion_mnist("test")
    user = x[np.isin(y, (0, 2, 4, 6))][:2000]  # a user who only sees tops: T-shirt, pullover, coat, shirt
    return path, user, x[:32]


def mobilenet(workdir, cache):
    import keras

    from tests.realdata import cifar_images
    from tflite_fineprune import export_model

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(224, 224, 3), classes=10)
    path = os.path.join(workdir, "mobilenet.tflite")
    export_model(model, path, verify=False)
    images = cifar_images(10, size=224) / 127.5 - 1.0  # random weights: real images only drive activity
    return path, images.astype(np.float32), images[:32].astype(np.float32)


def resnet8(workdir, cache):
    from tflite_fineprune.converters.vision import export_mlperf
    from tests.realdata import cifar_images

    path = os.path.join(workdir, "resnet8.tflite")
    export_mlperf(path, verify=False)
    images = cifar_images(30).astype(np.uint8)
    return path, images, images[:32]


def ds_cnn(workdir, cache):
    from tflite_fineprune.converters.speech import export_mlperf
    from tests.realdata import speech_test_split

    path = os.path.join(workdir, "ds_cnn.tflite")
    export_mlperf(path, verify=False)
    clips, _ = speech_test_split(step=10)
    return path, clips, clips[:32]


MODELS = {  # name -> (builder, unit sparsities)
    "fashion_mlp": (fashion, (0.5, 0.7)),
    "mobilenet_v2_0.35": (mobilenet, (0.3, 0.5)),
    "resnet8": (resnet8, (0.3, 0.5)),
    "ds_cnn": (ds_cnn, (0.3,)),
}


def measure(name, builder, sparsities, workdir, args):
    path, user, batch_source = builder(workdir, args.cache)
    personalizer = Personalizer(path, backend="litert", num_threads=args.threads)
    personalizer.observe(user, progress=False)
    observed = personalizer.get_state()
    full = State(masks=np.ones_like(observed.masks), counts=observed.counts, samples=observed.samples)
    dense_path = os.path.join(workdir, f"{name}-dense.tflite")
    slim_model(path, full, dense_path)
    masked_bytes, dense_bytes = os.path.getsize(path), os.path.getsize(dense_path)
    print(f"\n{name}: export (masked) {masked_bytes / 1e3:,.0f} kB, dense {dense_bytes / 1e3:,.0f} kB")
    print(f"{'units':>5} {'weights':>7} {'MACs':>6} {'slim kB':>8} {'dense/slim':>10} {'batch':>5} "
          f"{'dense ms':>9} {'masked ms':>9} {'slim ms':>8} {'masked/dense':>12} {'dense/slim':>10} "
          f"{'time left':>9} {'MACs left':>9}")
    for sparsity in sparsities:
        personalizer.set_state(observed)
        report = personalizer.prune(sparsity)
        slim_path = os.path.join(workdir, f"{name}-{sparsity}.tflite")
        slim = slim_model(path, personalizer.get_state(), slim_path)
        if slim.still_masked:
            print(f"  still masked: {slim.still_masked}")
        runners = {}
        for key, file in (("dense", dense_path), ("slim", slim_path)):
            runners[key] = Interpreter(model_path=file, num_threads=args.threads).get_signature_runner("infer")
        masked = personalizer._runner("infer")
        for batch in args.batches:
            x = np.resize(batch_source, (batch, *batch_source.shape[1:])).astype(batch_source.dtype)
            outputs = [r(x=x)["output"] for r in (runners["dense"], masked, runners["slim"])]
            error = np.max(np.abs(outputs[1] - outputs[2])) / np.max(np.abs(outputs[1]))
            assert error <= 1e-5, f"slim differs from masked by {error:.1e}"
            t_dense, t_masked, t_slim = time_calls(
                [lambda r=r: r(x=x) for r in (runners["dense"], masked, runners["slim"])], args.repeats)
            print(f"{sparsity:>5.0%} {report.weights:>7.1%} {report.macs:>6.1%} {slim.slim_bytes / 1e3:>8,.0f} "
                  f"{dense_bytes / slim.slim_bytes:>10.2f} {batch:>5} {1e3 * t_dense:>9.3f} {1e3 * t_masked:>9.3f} "
                  f"{1e3 * t_slim:>8.3f} {t_masked / t_dense:>12.2f} {t_dense / t_slim:>10.2f} "
                  f"{t_slim / t_dense:>9.1%} {1 - report.macs:>9.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/tflite-fineprune"),
                        help="where the trained Fashion-MNIST MLP is kept between runs")
    parser.add_argument("--only", choices=tuple(MODELS), action="append")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    os.makedirs(args.cache, exist_ok=True)
    print(f"LiteRT, {args.threads} thread(s), median of {args.repeats} interleaved calls per model and batch; "
          "units = unit sparsity per layer; weights/MACs = fraction removed")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only or MODELS:
            builder, sparsities = MODELS[name]
            measure(name, builder, sparsities, workdir, args)


if __name__ == "__main__":
    main()
