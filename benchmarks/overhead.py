"""Cost of the Fine-Pruning machinery inside an exported model.

For MobileNetV2 (alpha 0.35, 224x224, random weights), MobileNetV3-Small
(224x224, random weights) and a CIFAR-style residual CNN, under LiteRT with a
fixed thread count:

* `collect` vs `infer` time on the same batches (goal <= 1.25x);
* masked `infer` vs the plain model converted by TFLiteConverter, time and
  file size (goal <= 1.10x);

each for the default export (every layer's channels are units) and for
`couple_depthwise=True` (a layer and the depthwise layer it feeds share their
units: one mask and one count per pair instead of two).

`mobilenet_v3_64` (MobileNetV3-Small at 64x64, random weights) measures the
cost of counting (issue 22, goal `collect` <= 1.20x `infer`): the default
export (magnitude statistics on), the same without magnitude statistics (the
export before them), the default with reference data (as the converters
export: the normalization moments and the per-sample typicality output), and
every lever (the default plus reference data, mean
compensation and prior correction; classifier prototypes need a Dense
classifier, which MobileNetV3 does not have).

Ratios: of the medians, and `paired`, the median over rounds of collect's time
over infer's in the same round (steadier on a shared machine).

usage: python benchmarks/overhead.py [--threads 2] [--repeats 50] [--batches 1,8] [--models mobilenet_v2,...]
       python benchmarks/overhead.py --export-only DIR [--models ...]   # needs TensorFlow
       python benchmarks/overhead.py --time-only DIR [--threads ...]    # needs only LiteRT and numpy
       python benchmarks/overhead.py --time-only DIR --baseline OLD_DIR  # old and new exports, interleaved

The two halves let the timing run on a quiet machine (or a phone-class board)
that has no TensorFlow: DIR holds each model's masked and plain `.tflite` and a
small JSON with its input shape and weight count.
"""

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def residual_cnn():
    """ResNet-20-like CIFAR network (3 stages x 3 blocks, 16/32/64 channels)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage and not block else 1
            y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
            y = layers.BatchNormalization()(y)
            if stride != 1 or x.shape[-1] != width:
                x = layers.BatchNormalization()(layers.Conv2D(width, 1, strides=stride, use_bias=False)(x))
            x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x), name="resnet20")


def mobilenet_v2():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(224, 224, 3))


def mobilenet_v3_small():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))


def mobilenet_v3_64():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3))


def every_lever(model):
    """Export options that switch on every lever MobileNetV3 allows (the reference pool: random inputs).

    Not classifier prototypes: they need a Dense classifier, and MobileNetV3's is a 1x1 convolution.
    """
    pool = np.random.default_rng(1).uniform(-1, 1, (32, *model.input_shape[1:])).astype(np.float32)
    return dict(reference_data=pool, mean_compensation=True, prior_correction=True)


# Each form: (file suffix, label, export options from the model). The first is the default export.
SEPARATE_AND_COUPLED = (("", "separate units", lambda model: {}),
                        ("-coupled", "couple_depthwise", lambda model: {"couple_depthwise": True}))
COUNTING = (("", "default export", lambda model: {}),
            ("-nomagnitude", "no magnitude", lambda model: {"magnitude_pruning": False}),
            ("-reference", "reference data", lambda model: {"reference_data": every_lever(model)["reference_data"]}),
            ("-levers", "every lever", every_lever))

MODELS = {"mobilenet_v2": ("mobilenet_v2_0.35_224", mobilenet_v2, SEPARATE_AND_COUPLED),
          "mobilenet_v3_small": ("mobilenet_v3_small_224", mobilenet_v3_small, SEPARATE_AND_COUPLED),
          "resnet20": ("resnet20_cifar", residual_cnn, SEPARATE_AND_COUPLED),
          "mobilenet_v3_64": ("mobilenet_v3_small_64", mobilenet_v3_64, COUNTING)}


def time_runners(calls, repeats):
    """Seconds per call of each (runner, feed), one list per call, interleaved so drift hits all alike."""
    for runner, feed in calls:  # warm-up: allocation, delegate preparation
        runner(**feed)
        runner(**feed)
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for i, (runner, feed) in enumerate(calls):
            start = time.perf_counter()
            runner(**feed)
            samples[i].append(time.perf_counter() - start)
    return samples


def paired_ratio(numerator, denominator):
    """Median over rounds of one call's time over the other's in the same round: on a shared machine the load
    changes between rounds more than within one, so this moves less than the ratio of the medians."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def export_pair(name, model, workdir, forms):
    """Write `name`<suffix>.tflite (each masked form), `name`-plain.tflite (TFLiteConverter) and `name`.json."""
    import tensorflow as tf

    from tflite_fineprune import export_model

    for suffix, _, options in forms:
        export_model(model, os.path.join(workdir, f"{name}{suffix}.tflite"), verify=False, **options(model))
    with contextlib.redirect_stdout(io.StringIO()):  # the Keras exporter lists every captured variable
        plain_bytes = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with open(os.path.join(workdir, f"{name}-plain.tflite"), "wb") as f:
        f.write(plain_bytes)
    with open(os.path.join(workdir, f"{name}.json"), "w") as f:
        json.dump({"input_shape": list(model.input_shape[1:]), "weights": int(model.count_params()),
                   "forms": [[suffix, label] for suffix, label, _ in forms]}, f)


def forms_in(workdir, name, label_suffix=""):
    """(suffix, label, path) of each masked form of `name` in `workdir` (its JSON lists them)."""
    with open(os.path.join(workdir, f"{name}.json")) as f:
        info = json.load(f)
    # Directories written before the forms were recorded hold the separate and coupled forms.
    labels = info.get("forms", [[suffix, label] for suffix, label, _ in SEPARATE_AND_COUPLED])
    forms = [(suffix, label + label_suffix, os.path.join(workdir, f"{name}{suffix}.tflite"))
             for suffix, label in labels]
    return [form for form in forms if os.path.exists(form[2])]


def measure(name, workdir, threads, repeats, batches, baseline=None):
    plain_path = os.path.join(workdir, f"{name}-plain.tflite")
    with open(os.path.join(workdir, f"{name}.json")) as f:
        info = json.load(f)
    plain = Interpreter(model_path=plain_path, num_threads=threads)
    plain_key = next(iter(plain.get_signature_list()))
    plain_input = plain.get_signature_list()[plain_key]["inputs"][0]
    plain_runner = plain.get_signature_runner(plain_key)
    forms = forms_in(workdir, name)
    if baseline and os.path.exists(os.path.join(baseline, f"{name}.json")):
        # The same forms exported by other code (another commit): timed in the same rounds, interleaved.
        forms += forms_in(baseline, name, " (baseline)")
    interpreters = [Interpreter(model_path=path, num_threads=threads) for _, _, path in forms]
    rows = []
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.uniform(-1, 1, (batch, *info["input_shape"])).astype(np.float32)
        calls = [(plain_runner, {plain_input: x})]
        for interpreter in interpreters:
            calls += [(interpreter.get_signature_runner("infer"), {"x": x}),
                      (interpreter.get_signature_runner("collect"), {"x": x})]
        rows.append((batch, time_runners(calls, repeats)))
    print(f"\n{name}: {info['weights']:,} weights; plain file {os.path.getsize(plain_path) / 1e6:.2f} MB")
    for k, (_, label, path) in enumerate(forms):
        size_ratio = os.path.getsize(path) / os.path.getsize(plain_path)
        print(f"{label}: file {os.path.getsize(path) / 1e6:.2f} MB = {size_ratio:.3f}x plain (goal <= 1.10x)")
        print(f"{'batch':>5} {'plain ms':>9} {'infer ms':>9} {'collect ms':>10} {'infer/plain':>11} "
              f"{'collect/infer':>13} {'paired':>6}")
        for batch, samples in rows:
            s_infer, s_collect = samples[1 + 2 * k], samples[2 + 2 * k]
            t_plain, t_infer, t_collect = (statistics.median(s) for s in (samples[0], s_infer, s_collect))
            print(f"{batch:>5} {1e3 * t_plain:>9.2f} {1e3 * t_infer:>9.2f} {1e3 * t_collect:>10.2f} "
                  f"{t_infer / t_plain:>11.3f} {t_collect / t_infer:>13.3f} {paired_ratio(s_collect, s_infer):>6.3f}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--models", default=",".join(MODELS), help=f"some of {', '.join(MODELS)}")
    phase = parser.add_mutually_exclusive_group()
    phase.add_argument("--export-only", metavar="DIR", help="write the models to DIR and stop (needs TensorFlow)")
    phase.add_argument("--time-only", metavar="DIR", help="time the models in DIR (no TensorFlow)")
    parser.add_argument("--baseline", metavar="DIR", help="with --time-only: also time the forms that another "
                                                          "version's --export-only wrote to DIR, interleaved")
    args = parser.parse_args()
    names = [MODELS[key][0] for key in args.models.split(",")]
    if args.export_only:
        os.makedirs(args.export_only, exist_ok=True)
        for key in args.models.split(","):
            export_pair(MODELS[key][0], MODELS[key][1](), args.export_only, MODELS[key][2])
        return
    batches = [int(b) for b in args.batches.split(",")]
    print(f"LiteRT interpreter, {args.threads} threads, median of {args.repeats} calls; goals: "
          "collect/infer <= 1.25 (mobilenet_v3_small_64: <= 1.20), infer/plain <= 1.10, size <= 1.10")
    if args.time_only:
        names = [n for n in names if os.path.exists(os.path.join(args.time_only, f"{n}.json"))]
        for name in names:
            measure(name, args.time_only, args.threads, args.repeats, batches, args.baseline)
        return
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.models.split(","):
            export_pair(MODELS[key][0], MODELS[key][1](), workdir, MODELS[key][2])
            measure(MODELS[key][0], workdir, args.threads, args.repeats, batches)


if __name__ == "__main__":
    main()
