"""Where `collect`'s extra time goes: XNNPACK vs builtin kernels, and counting variants.

On the test zoo's MobileNetV2 (alpha 0.35, 96x96, batch 1), times `infer`
and `collect`:

* with the default XNNPACK delegate and with builtin kernels only;
* (with XNNPACK) for exports whose activity count is replaced by less work:
  `none` (no counting at all, counters still updated), `mean` (a plain
  spatial mean, no positivity test), `relu6` (the earlier positivity test,
  RELU6(x * 2**100)), `sampled` (the CEIL count on every 4th position of
  each spatial axis, a strided slice first), `clip` (CEIL(clip(x, 0, 1))
  everywhere, the form before ReLU chains dropped the clamp's lower bound).
  These variants patch the exporter and only exist to locate the cost.

usage: python benchmarks/collect_profile.py [--repeats 40] [--batch 1] [--variants none,mean,relu6,sampled,clip]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from tests import zoo  # noqa: E402
from tflite_fineprune import export_model  # noqa: E402
from tflite_fineprune.export import activity, module  # noqa: E402


def no_count(value, units, above_minus_one=False):
    return tf.zeros([units])


def clip_count(value, units, above_minus_one=False):
    """CEIL(clip(value, 0, 1)) whatever the chain: a MINIMUM, a RELU and a CEIL."""
    return activity.count_active(value, units, above_minus_one=False)


def relu6_count(value, units, above_minus_one=False):
    """The count before export/activity.py's CEIL form: RELU6(value * 2**100) / 6."""
    spatial = list(range(1, len(value.shape) - 1))
    active = tf.reduce_mean(tf.nn.relu6(value * 2.0 ** 100), axis=spatial, keepdims=True)
    return tf.reduce_sum(tf.reshape(active, [-1, units]), axis=0) / 6.0


def sampled_count(value, units, above_minus_one=False):
    """The CEIL count on every 4th position of each spatial axis (an approximation)."""
    return activity.count_active(value[:, 2::4, 2::4, :], units, above_minus_one)


def mean_only(value, units, above_minus_one=False):
    spatial = list(range(1, len(value.shape) - 1))
    return tf.reduce_sum(tf.reshape(tf.reduce_mean(value, axis=spatial, keepdims=True), [-1, units]), axis=0)


def time_pair(path, x, repeats, resolver=OpResolverType.AUTO):
    interpreter = Interpreter(model_path=path, num_threads=2, experimental_op_resolver_type=resolver)
    runners = {name: interpreter.get_signature_runner(name) for name in ("infer", "collect")}
    for runner in runners.values():
        runner(x=x)
        runner(x=x)
    samples = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(x=x)
            samples[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(s) for name, s in samples.items()}


def report(label, times):
    print(f"{label:<34} infer {times['infer']:7.2f} ms  collect {times['collect']:7.2f} ms  "
          f"collect/infer {times['collect'] / times['infer']:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variants", default="none,mean,relu6,sampled,clip")
    args = parser.parse_args()
    model = zoo.mobilenet_v2()
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *model.input_shape[1:])).astype(np.float32)
    print(f"zoo MobileNetV2 {model.input_shape[1:]}, batch {args.batch}, 2 threads, median of {args.repeats} "
          "interleaved calls")
    with tempfile.TemporaryDirectory() as workdir:
        exact = os.path.join(workdir, "exact.tflite")
        export_model(model, exact, verify=False)
        report("exact count, XNNPACK", time_pair(exact, x, args.repeats))
        report("exact count, builtin kernels only",
               time_pair(exact, x, args.repeats, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
        original = module.count_active
        for variant in args.variants.split(","):
            path = os.path.join(workdir, f"{variant}.tflite")
            module.count_active = {"none": no_count, "mean": mean_only, "relu6": relu6_count,
                                   "sampled": sampled_count, "clip": clip_count}[variant]
            try:
                export_model(model, path, verify=False)
            finally:
                module.count_active = original
            report(f"{variant}, XNNPACK", time_pair(path, x, args.repeats))


if __name__ == "__main__":
    main()
