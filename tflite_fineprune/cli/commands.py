"""The sub-commands besides `personalize`: export, inspect, evaluate, slim, demo, android-assets."""

import numpy as np

from ..errors import FinePruneError, InputError, ModelError
from ..export.options import options_from_arguments
from .model_and_data import TFLITE_FILE, _load_data, _open, _warn, check_output, printable


def _check_export_output(args):
    """Before TensorFlow is imported (seconds): -o must be a new or a .tflite file, in a writable folder."""
    check_output(args.output, "-o", {"the Keras model": args.model, "--labels": args.labels}, TFLITE_FILE)


def cmd_export(args):
    labels = None
    if args.labels:
        from ..safe_io import read_file

        try:
            text = read_file(args.labels, "labels file", max_bytes=1 << 24).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FinePruneError(f"labels file {args.labels!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                 "expected one class name per line") from None
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    from ..export import export_model  # imports TensorFlow: after the arguments are checked
    from ..export.exporter import load_keras_model
    from ..progress import print_stage

    options = options_from_arguments(args, labels=labels, on_stage=print_stage)
    print(f"loading {printable(args.model)}", flush=True)
    model = load_keras_model(args.model)
    _warn_if_keras_application(model)
    report = export_model(model, args.output, options)
    print(report)


# keras.applications model names (model.name): these expect their own input scaling (preprocess_input).
_KERAS_APP_NAME = r"(mobilenet|resnet\d|resnet_?v2|efficientnet|densenet|inception|xception|vgg\d|nasnet|convnext)"


def _warn_if_keras_application(model):
    """A keras.applications model exported as is takes raw 0–255 pixels but expects its own scaling."""
    import re

    if not re.match(_KERAS_APP_NAME, model.name, re.IGNORECASE):
        return
    first = [type(layer).__name__ for layer in model.layers[:4]]
    if any(name in ("Rescaling", "Normalization") for name in first):  # e.g. MobileNetV3, EfficientNet
        return
    _warn(f"{model.name} looks like a keras.applications model: the exported .tflite will feed its input (e.g. "
          "raw 0–255 pixels) to the model unchanged, but it expects its own preprocess_input scaling. Export it "
          "with `python -m tflite_fineprune.converters.vision keras-app NAME -o X.tflite`, which puts that scaling in "
          "the graph")


def cmd_inspect(args):
    from ..metadata import read_model_file

    _, meta = read_model_file(args.model)
    print(f"{printable(args.model)}: tflite-fineprune format {meta.format_version}, "
          f"fingerprint {meta.fingerprint[:16]}")
    audio = ""
    if meta.sample_rate > 0:  # audio files are resampled to this rate (datafiles.fit_audio)
        samples = int(np.prod(meta.input_shape[1:]))
        audio = (f"; audio at {meta.sample_rate} Hz, {samples / meta.sample_rate:g} s clips (files at other rates "
                 "are resampled)")
    print(f"input  {meta.input_name} {list(meta.input_shape)} {meta.input_dtype}{audio}")
    print(f"output {meta.output_name} [{meta.num_classes}] {meta.output_kind}"
          + (f", labels: {', '.join(meta.labels)}" if meta.labels else ""))
    print(f"policy {meta.policy}; signatures: {', '.join(meta.signatures)}"
          + ("" if meta.output_group is not None else
             "; classes not prunable (re-export with `tflite-fineprune export --prune-outputs` to prune them)"))
    print(f"weights {meta.total_weights:,}  MACs/sample {meta.total_macs:,}")
    if meta.quantization:
        print(f"quantization: {meta.quantization}")
    # Coupled groups (couple_depthwise) are named and classed "a+b": the columns widen to show them whole.
    name_width = max([28] + [len(g.name) for g in meta.groups])
    class_width = max([16] + [len(g.layer_class) for g in meta.groups])
    header = (f"{'#':>3}  {'layer':<{name_width}} {'class':<{class_width}} {'role':<6} {'units':>6} {'offset':>7} "
              f"{'positions':>9} {'weights/unit':>12} {'MACs/unit':>12}")
    print(header)
    print("-" * len(header))
    for i, g in enumerate(meta.groups):
        print(f"{i:>3}  {g.name:<{name_width}} {g.layer_class:<{class_width}} {g.role:<6} {g.units:>6} {g.offset:>7} "
              f"{g.positions:>9} {g.weights_per_unit:>12.1f} {g.macs_per_unit:>12.0f}")
    print(f"{len(meta.groups)} groups, {meta.num_units} units")
    if meta.excluded:
        print("not prunable:")
        for name, reason in meta.excluded:
            print(f"  {name}: {reason}")
    if meta.slim:
        kept = sum(len(v) for v in meta.slim["kept_units"].values())
        print(f"slim: pruned units removed ({kept} of {meta.num_units} units kept), from model "
              f"{meta.slim['from_fingerprint'][:16]} with state CRC-32 {meta.slim['state_crc32']:08x}; predict only")
        for name, reason in meta.slim.get("still_masked", {}).items():
            print(f"  {name}: still masked ({reason})")


def cmd_evaluate(args):
    personalizer = _open(args)
    slim = personalizer.metadata.slim
    if args.state and slim:
        raise ModelError(f"{args.model} is a slim model: its personalization is already in the file (from "
                         f"the state with CRC-32 {slim['state_crc32']:08x}), so --state has nothing to apply; "
                         "evaluate it without --state, or the original export with --state")
    if args.state:
        personalizer.load_state(args.state)
    correct = samples = 0
    for x, y, _ in _load_data(args, personalizer, personalizer.labels).labeled():  # one batch in memory
        if y.max() >= personalizer.metadata.num_classes:
            raise InputError(f"class index {int(y.max())} is out of range for "
                             f"{personalizer.metadata.num_classes} classes")
        correct += int(np.sum(np.argmax(personalizer.predict(x, progress=False), axis=-1) == y))
        samples += len(y)
    accuracy = correct / samples
    sparsity = _slim_sparsity(personalizer.metadata) if slim else personalizer.sparsity()
    print(f"accuracy {accuracy:.4f} on {samples} samples; unit sparsity {sparsity.units:.1%}, "
          f"weights {sparsity.weights:.1%}, MACs {sparsity.macs:.1%}"
          + (" removed (slim model)" if slim else ""))


def _slim_sparsity(meta):
    """A slim file's sparsity against the export it came from, from the units it kept."""
    from ..sparsity import measure_sparsity

    masks = np.zeros(meta.num_units, np.float32)
    for group in meta.groups:
        masks[[group.offset + u for u in meta.slim["kept_units"].get(group.name, [])]] = 1.0
    return measure_sparsity(meta, masks)


def cmd_slim(args):
    from ..slim import slim_model

    check_output(args.output, "-o", {"the model": args.model, "--state": args.state}, TFLITE_FILE)
    report = slim_model(args.model, args.state, args.output, quantize=args.quantize)
    quantized = f" ({report.quantization})" if report.quantization else ""
    print(f"{printable(report.path)}{quantized}: {report.slim_bytes:,} bytes (export {report.dense_bytes:,}), "
          f"weight sparsity {report.weight_sparsity:.1%}, MAC sparsity {report.mac_sparsity:.1%}")
    for name, reason in report.still_masked.items():
        print(f"  {name}: still masked ({reason})")


def cmd_demo(args):
    from tflite_fineprune.converters.demo import run_demo

    run_demo(args.data, args.out, args.vision, args.fashion, args.fashion_cnn)


def cmd_android_assets(args):
    from tflite_fineprune.converters.android_assets import build_assets  # needs the converters (TensorFlow) only here

    build_assets(args.output, args.speech, args.vision, args.data, args.record)


def _silence_unless_verbose(args):
    """Commands that load TensorFlow (those with --verbose) keep its log lines out unless asked; the others
    keep the interpreters' native notes out (without importing TensorFlow)."""
    from ..native_logs import silence_interpreters, silence_tensorflow

    if hasattr(args, "verbose"):
        silence_tensorflow(args.verbose)
    else:
        silence_interpreters()


def _check_demo_data(args):
    if args.fashion or args.fashion_cnn:
        from tflite_fineprune.converters.fashion import find_fashion_mnist

        find_fashion_mnist(args.data)
    else:
        from tflite_fineprune.converters.demo import find_data

        find_data(args.data, args.vision)


def _check_asset_data(args):
    from .. import demo_data as rd

    needed = [rd.SPEECH_COMMANDS_TEST, rd.CIFAR10_TEST] + ([rd.MLPERF_KWS] if not args.speech else []) + (
        [rd.MLPERF_RESNET8] if not args.vision else [])
    rd.require_data(needed, args.data, "tflite-fineprune android-assets")
