"""The `tflite-fineprune` command."""

import argparse
import os
import sys

import numpy as np

from .errors import FinePruneError
from .interpreters import BACKENDS
from .export.options import add_export_arguments, options_from_arguments

EXIT_ERROR = 2


def _fraction(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tflite-fineprune",
        description="Label-free on-device personalization of TFLite models by activity pruning.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("export", help="Keras model (.keras/.h5) → personalizable .tflite")
    p.add_argument("model", help="a .keras or .h5 file")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--labels", help="text file with one class name per line")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    add_export_arguments(p)  # the flags of ExportOptions, shared with the converters

    p = commands.add_parser("inspect", help="print the unit groups of an exported model")
    p.add_argument("model", help="an exported .tflite")

    p = commands.add_parser("personalize", help="observe a user's unlabeled data, personalize, save the state")
    _runtime_args(p)
    p.add_argument("--sparsity", type=_fraction,
                   help="expert: prune this fraction of each layer's units instead of the automatic choice")
    p.add_argument("--state", required=True, help="state file (loaded if it exists, then overwritten)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing state file")
    p.add_argument("--min-class-fraction", type=_fraction,
                   help="also prune classes predicted on less than this fraction of the data")

    p = commands.add_parser("slim", help="write a plain .tflite of a user's model with the pruned units removed")
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--state", required=True, help="the user's state file")
    p.add_argument("-o", "--output", required=True, help="the slim .tflite to write")
    p.add_argument("--quantize", choices=("int8",), help="int8 weights (dynamic range, no TensorFlow; docs/slim.md)")

    p = commands.add_parser("demo", help="personalize real pretrained models for real users (speech, --vision or --fashion)")
    p.add_argument("--data", help="reference data folder (default: $FINEPRUNE_DATA, else ../shared/data); with "
                   "--fashion, the folder with the four Fashion-MNIST *-ubyte.gz files (or its fashion-mnist/)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    p.add_argument("--out", default="fineprune-demo", help="folder for the models, CSV and plot")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--vision", action="store_true", help="CIFAR-10 class-subset users with ResNet-8 instead of speakers")
    kind.add_argument("--fashion", action="store_true",
                      help="Fashion-MNIST class-subset users with an over-parameterized MLP (trained first)")

    p = commands.add_parser("android-assets", help="generate the Android demo app's assets (models, users, manifest)")
    p.add_argument("-o", "--output", default=os.path.join("android_demo", "app", "src", "main", "assets"),
                   help="asset folder (default: android_demo/app/src/main/assets)")
    p.add_argument("--speech", help="speech model .tflite (default: export the MLPerf Tiny DS-CNN)")
    p.add_argument("--vision", help="vision model .tflite (default: export the MLPerf Tiny ResNet-8)")
    p.add_argument("--data", help="reference data folder (default: $FINEPRUNE_DATA, else ../shared/data)")
    p.add_argument("--record", help="also write recordings of the app's signature calls here (JVM replay tests)")

    p = commands.add_parser("evaluate", help="accuracy on DATA/<label>/<file>")
    _runtime_args(p)
    p.add_argument("--state", help="a state file to apply first")
    _finish_help(commands)
    return parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (but not the uninformative None/False ones) and keeps the examples' line breaks."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


# Examples in --help use the settings the README's measurements ("Which settings help") found safe.
EXAMPLES = {
    "export": """example:
  tflite-fineprune export model.keras -o model.tflite --labels labels.txt --prune-outputs
  (keras.applications models: python -m converters.vision keras-app NAME -o X.tflite --prune-outputs,
   which adds the model's own pixel scaling)""",
    "personalize": """examples (settings measured in the README, "Which settings help"):
  # a user who meets only a few of the classes (measured on CIFAR-10 users: 29 of 30 helped):
  tflite-fineprune personalize model.tflite --data my_photos/ --state me.state --sparsity 0 --min-class-fraction 0.1
  # speech models: every pruning setting measured lowered most speakers' accuracy; keep them dense
  tflite-fineprune personalize kws.tflite --data my_clips/ --state me.state --sparsity 0
  # an over-parameterized model (the Fashion-MNIST MLP): units too
  tflite-fineprune personalize mlp.tflite --data my_photos/ --state me.state --sparsity 0.5 --min-class-fraction 0.1
Pruning is cumulative: a second run adds to the state; --fresh starts over.""",
}


def _finish_help(commands):
    for name, sub in commands.choices.items():
        sub.formatter_class = _HelpFormatter
        if name in EXAMPLES and not sub.epilog:
            sub.epilog = EXAMPLES[name]


def _runtime_args(p):
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--data", required=True, help="folder of .npy, image or .wav files")
    p.add_argument("--preprocess", help="module:function turning a decoded file into samples")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS,
                   help="which TFLite interpreter runs the model (auto: the first one installed)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per interpreter call")


def cmd_export(args):
    labels = None
    if args.labels:
        from .state import read_file

        try:
            text = read_file(args.labels, "labels file", max_bytes=1 << 24).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FinePruneError(f"labels file {args.labels!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                 "expected one class name per line") from None
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    from .export import export_model  # imports TensorFlow: after the arguments are checked
    from .export.exporter import load_keras_model
    from .progress import print_stage

    options = options_from_arguments(args, labels=labels, on_stage=print_stage)
    print(f"loading {args.model}", flush=True)
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
          "with `python -m converters.vision keras-app NAME -o X.tflite`, which puts that scaling in the graph")


def _warn(message):
    print(f"tflite-fineprune: warning: {message}", file=sys.stderr, flush=True)


def cmd_inspect(args):
    from .metadata import read_model_file

    _, meta = read_model_file(args.model)
    print(f"{args.model}: tflite-fineprune format {meta.format_version}, fingerprint {meta.fingerprint[:16]}")
    print(f"input  {meta.input_name} {list(meta.input_shape)} {meta.input_dtype}")
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


def _open(args):
    from .datafiles import list_files
    from .runtime import Personalizer

    list_files(args.data)  # a wrong --data fails before the model is loaded

    return Personalizer(args.model, backend=args.backend, batch_size=args.batch_size)


def _load_data(args, personalizer, labels=None):
    """The --data folder decoded into the model's input shape, dtype and sample rate."""
    from .datafiles import load_folder

    meta = personalizer.metadata
    return load_folder(args.data, meta.input_shape[1:], args.preprocess, labels=labels, dtype=meta.input_dtype,
                       sample_rate=meta.sample_rate, progress=True)


def cmd_personalize(args):
    from .inputs import check_sparsity

    if args.sparsity is None and args.min_class_fraction is None:
        return _personalize_auto(args)
    check_sparsity(args.sparsity or 0.0)
    if args.min_class_fraction is not None:
        check_sparsity(args.min_class_fraction, "--min-class-fraction")
    personalizer = _open(args)
    if args.min_class_fraction is not None and personalizer.metadata.output_group is None:
        # Before any work; the library says what, the command adds how to re-export.
        raise FinePruneError(f"{args.model} was exported without output (class) pruning; re-export it with "
                             "`tflite-fineprune export --prune-outputs` (Python: export_model(..., "
                             "prune_outputs=True); the converters: --prune-outputs)")
    if args.state and os.path.exists(args.state) and not args.fresh:
        personalizer.load_state(args.state)
        print(f"continuing from {args.state}: this data is counted on top of the {personalizer.samples} samples "
              "observed before, and units pruned before stay pruned (pass --fresh to start over)")
    _warn_if_speech(personalizer, args.sparsity, args.min_class_fraction)
    x, _, files = _load_data(args, personalizer)
    before = np.argmax(personalizer.observe(x, progress=True), axis=-1)
    if args.sparsity is not None:
        pruned_before = _pruned_fractions(personalizer)
        sparsity = personalizer.prune(args.sparsity)
        _note_cumulative(pruned_before, args.sparsity)
        if args.sparsity > 0:
            _warn_if_predictions_changed(before, np.argmax(personalizer.predict(x, progress=None), axis=-1))
    else:
        sparsity = personalizer.sparsity()
    if args.min_class_fraction is not None:
        kept_before = personalizer.masks[personalizer.metadata.output_group.name]
        sparsity = personalizer.prune_outputs(args.min_class_fraction)
        _print_dropped_classes(personalizer, kept_before)
    personalizer.save_state(args.state)
    print(f"observed {len(x)} samples from {len(files)} files; pruned {sparsity.pruned_units}/{sparsity.total_units} "
          f"units (unit sparsity {sparsity.units:.1%}, weights {sparsity.weights:.1%}, MACs {sparsity.macs:.1%}); "
          f"state saved to {args.state}")


# How many predictions unit pruning may change on the user's own data before the CLI warns: on the compact
# models the README measures, settings that changed many predictions lowered accuracy.
CHANGED_PREDICTIONS_WARNING = 0.10


def _pruned_fractions(personalizer):
    """Hidden layer name → fraction of its units pruned now."""
    return {name: 1.0 - float(mask.mean()) for name, mask in personalizer.masks.items()
            if name != getattr(personalizer.metadata.output_group, "name", None)}


def _note_cumulative(pruned_before, sparsity):
    """A --sparsity below what earlier runs pruned prunes nothing more: say so instead of ignoring it."""
    above = {name: fraction for name, fraction in pruned_before.items() if fraction > sparsity + 1e-9}
    if above:
        worst = max(above.values())
        print(f"note: pruning is cumulative: {len(above)} layers already have up to {worst:.0%} of their units "
              f"pruned, more than --sparsity {sparsity:g}; those units stay pruned (every other unit stays as it "
              "was). To prune less, start over with --fresh")


def _warn_if_speech(personalizer, sparsity, min_class_fraction):
    """The README's speaker measurements (DS-CNN, 53 speakers) found every pruning setting harmful."""
    if personalizer.metadata.sample_rate <= 0:
        return
    if sparsity is not None and sparsity >= 0.02:
        _warn(f"--sparsity {sparsity:g} on a speech model: in the README's speaker measurements (benchmarks/"
              "personalization.py, MLPerf Tiny DS-CNN, 53 speakers) pruning 2% of units lowered mean accuracy "
              "0.910 → 0.831 and hurt 40 speakers, 5% gave 0.665; --sparsity 0 keeps the model dense")
    if min_class_fraction is not None and min_class_fraction > 0:
        _warn(f"--min-class-fraction {min_class_fraction:g} on a speech model: in the README's speaker measurements "
              "dropping classes below 5% lowered mean accuracy 0.910 → 0.609 and hurt all 53 speakers")


def _warn_if_predictions_changed(before, after):
    changed = float(np.mean(before != after))
    if changed > CHANGED_PREDICTIONS_WARNING:
        _warn(f"this --sparsity changed the predicted class of {changed:.0%} of your {len(before)} samples; in the "
              "README's measurements (\"Which settings help\"), settings that change many predictions lowered "
              "accuracy on compact models. Consider a lower --sparsity (with --fresh)")


def _print_dropped_classes(personalizer, kept_before):
    group = personalizer.metadata.output_group
    kept = personalizer.masks[group.name]
    labels = personalizer.labels or [f"class {i}" for i in range(group.units)]
    dropped = [labels[i] for i in np.flatnonzero((kept_before == 1) & (kept == 0))]
    excluded = [labels[i] for i in np.flatnonzero(kept == 0)]
    print(f"dropped {len(dropped)} classes: {', '.join(dropped) or 'none'}"
          + (f"; {len(excluded)} classes excluded in all: {', '.join(excluded)}" if len(excluded) > len(dropped)
             else "") + f"; kept: {', '.join(labels[i] for i in np.flatnonzero(kept))}")


def _personalize_auto(args):
    """The default: the label-free automatic choice (recipe.py), from the dense model."""
    personalizer = _open(args)
    if args.state and os.path.exists(args.state) and not args.fresh:
        print(f"note: the automatic recipe starts from the dense model; {args.state} is replaced "
              "(expert options --sparsity/--min-class-fraction continue from it)")
    x, _, files = _load_data(args, personalizer)
    report = personalizer.personalize(x)
    personalizer.save_state(args.state)
    print(f"observed {len(x)} samples from {len(files)} files\n{report}\nstate saved to {args.state}")


def cmd_evaluate(args):
    personalizer = _open(args)
    if args.state:
        personalizer.load_state(args.state)
    labels = personalizer.labels
    x, y, _ = _load_data(args, personalizer, labels)
    if y.max() >= personalizer.metadata.num_classes:
        raise FinePruneError(f"class index {int(y.max())} is out of range for {personalizer.metadata.num_classes} classes")
    predicted = np.argmax(personalizer.predict(x, progress=None), axis=-1)
    accuracy = float(np.mean(predicted == y))
    sparsity = personalizer.sparsity()
    print(f"accuracy {accuracy:.4f} on {len(y)} samples; unit sparsity {sparsity.units:.1%}, "
          f"weights {sparsity.weights:.1%}, MACs {sparsity.macs:.1%}")


def cmd_slim(args):
    from .slim import slim_model

    report = slim_model(args.model, args.state, args.output, quantize=args.quantize)
    quantized = f" ({report.quantization})" if report.quantization else ""
    print(f"{report.path}{quantized}: {report.slim_bytes:,} bytes (export {report.dense_bytes:,}), "
          f"weight sparsity {report.weight_sparsity:.1%}, MAC sparsity {report.mac_sparsity:.1%}")
    for name, reason in report.still_masked.items():
        print(f"  {name}: still masked ({reason})")


def cmd_demo(args):
    from converters.demo import run_demo

    run_demo(args.data, args.out, args.vision, args.fashion)


def cmd_android_assets(args):
    from converters.android_assets import build_assets  # needs the converters (TensorFlow) only here

    build_assets(args.output, args.speech, args.vision, args.data, args.record)


def _silence_unless_verbose(args):
    """Commands that load TensorFlow (those with --verbose) keep its log lines out unless asked."""
    if hasattr(args, "verbose"):
        from .quiet import silence_tensorflow

        silence_tensorflow(args.verbose)


COMMANDS = {"android-assets": cmd_android_assets, "demo": cmd_demo, "evaluate": cmd_evaluate, "export": cmd_export,
            "inspect": cmd_inspect, "personalize": cmd_personalize, "slim": cmd_slim}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        _silence_unless_verbose(args)
        COMMANDS[args.command](args)
    except FinePruneError as exc:
        print(f"tflite-fineprune: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"tflite-fineprune: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tflite-fineprune: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
