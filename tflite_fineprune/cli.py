"""The `tflite-fineprune` command."""

import argparse
import os
import sys

import numpy as np

from .errors import FinePruneError
from .interpreters import BACKENDS
from .data_fetch import add_parser as add_data_parser
from .export.options import add_export_arguments, options_from_arguments

EXIT_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process ended by SIGPIPE


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
    p.add_argument("--state", required=True, help="the state file to write: " + RERUN)
    p.add_argument("--fresh", action="store_true",
                   help="replace the --state file even if it belongs to another model or is not a state file")
    p.add_argument("--sparsity", type=_fraction,
                   help="expert: prune this fraction of each layer's units instead of the automatic choice")
    p.add_argument("--min-class-fraction", type=_fraction,
                   help="expert: prune classes predicted on less than this fraction of the data instead of the "
                        "automatic class test")

    p = commands.add_parser("slim", help="write a plain .tflite of a user's model with the pruned units removed")
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--state", required=True, help="the user's state file")
    p.add_argument("-o", "--output", required=True, help="the slim .tflite to write")
    p.add_argument("--quantize", choices=("int8",), help="int8 weights (dynamic range, no TensorFlow; docs/slim.md)")

    p = commands.add_parser("demo", help="personalize real pretrained models for real users (speech, --vision or --fashion)")
    p.add_argument("--data", help="reference data folder (default: $FINEPRUNE_DATA, else the one `data fetch` fills); with "
                   "--fashion, the folder with the four Fashion-MNIST *-ubyte.gz files (or its fashion-mnist/)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    p.add_argument("--out", default="fineprune-demo", help="folder for the models, CSV and plot")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--vision", action="store_true", help="CIFAR-10 class-subset users with ResNet-8 instead of speakers")
    kind.add_argument("--fashion", action="store_true",
                      help="Fashion-MNIST class-subset users with an over-parameterized MLP (trained first)")

    p = commands.add_parser("android-assets", help="generate the Android demo app's assets (models, users, manifest)")
    p.add_argument("-o", "--output", default=os.path.join("android_demo", "app", "src", "main", "assets"),
                   help="asset folder")
    p.add_argument("--speech", help="speech model .tflite (default: export the MLPerf Tiny DS-CNN)")
    p.add_argument("--vision", help="vision model .tflite (default: export the MLPerf Tiny ResNet-8)")
    p.add_argument("--data", help="reference data folder (default: $FINEPRUNE_DATA, else the one `data fetch` fills)")
    p.add_argument("--record", help="also write recordings of the app's signature calls here (JVM replay tests)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")

    p = commands.add_parser("evaluate", help="accuracy on DATA/<label>/<file>")
    _runtime_args(p)
    p.add_argument("--state", help="a state file to apply first")
    COMMANDS["data"] = add_data_parser(commands)
    _finish_help(commands)
    return parser


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (but not the uninformative None/False/empty ones) and keeps the examples' line breaks;
    the converters' commands use it too."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == ():
            return action.help
        return super()._get_help_string(action)


# What a second `personalize` with the same --state does; --help, docs/cli.md, docs/newcomer.md and the run's
# own note say it in these words (tests/test_cli_says.py checks).
RERUN = "every run starts from the dense model on the data given and replaces the state file"


def _personalize_examples():
    from .measured import README_SECTION, row

    classes, auto = row("vision", "classes <10%"), row("vision", "auto (default)")
    mlp = row("fashion", "prune 50% + classes <10%")
    return f"""examples:
  # automatic and label-free (the default): chooses what to prune and shift from your data alone
  tflite-fineprune personalize model.tflite --data my_photos/ --state me.state
  # expert: exclude the classes predicted on < 10% of your data (CIFAR-10 class-subset users:
  # {classes.change}, {classes.helped} of {classes.users} helped; the automatic call: {auto.change})
  tflite-fineprune personalize model.tflite --data my_photos/ --state me.state --min-class-fraction 0.1
  # expert, over-parameterized models only (Fashion-MNIST MLP: {mlp.change}); on compact models
  # (speech, ResNet-8) unit pruning lowered accuracy
  tflite-fineprune personalize mlp.tflite --data my_photos/ --state me.state --sparsity 0.5 --min-class-fraction 0.1
{RERUN[0].upper() + RERUN[1:]};
--fresh also replaces another model's state file. Measurements: README, {README_SECTION}."""


EXAMPLES = {
    "export": """example:
  tflite-fineprune export model.keras -o model.tflite --labels labels.txt --prune-outputs
  (keras.applications models: python -m converters.vision keras-app NAME -o X.tflite --prune-outputs,
   which adds the model's own pixel scaling)""",
    "personalize": _personalize_examples,
}


def _finish_help(commands):
    for name, sub in commands.choices.items():
        sub.formatter_class = HelpFormatter
        if name in EXAMPLES and not sub.epilog:
            sub.epilog = EXAMPLES[name]() if callable(EXAMPLES[name]) else EXAMPLES[name]


def _runtime_args(p):
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--data", required=True, help="folder of .npy, image or audio (.wav, .flac, .ogg, .mp3) files")
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
                       sample_rate=meta.sample_rate, progress=True, notes=_note)


def _note(line):
    print(f"note: {line}", flush=True)


def cmd_personalize(args):
    from .inputs import check_sparsity

    if args.sparsity is not None:
        check_sparsity(args.sparsity)
    if args.min_class_fraction is not None:
        check_sparsity(args.min_class_fraction, "--min-class-fraction")
    personalizer = _open(args)
    if personalizer.metadata.slim:
        raise FinePruneError(f"{args.model} is a slim model (pruned units removed): it can only predict; "
                             "personalize the original export")
    if args.min_class_fraction is not None and personalizer.metadata.output_group is None:
        # Before any work; the library says what, the command adds how to re-export.
        raise FinePruneError(f"{args.model} was exported without output (class) pruning; re-export it with "
                             "`tflite-fineprune export --prune-outputs` (Python: export_model(..., "
                             "prune_outputs=True); the converters: --prune-outputs)")
    _say_what_is_replaced(args, personalizer)
    if args.sparsity is None and args.min_class_fraction is None:
        return _personalize_auto(args, personalizer)
    _warn_if_speech(personalizer, args.sparsity, args.min_class_fraction)
    x, _, files = _load_data(args, personalizer)
    before = np.argmax(personalizer.observe(x, progress=True), axis=-1)
    if args.sparsity is not None:
        sparsity = personalizer.prune(args.sparsity)
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


def _say_what_is_replaced(args, personalizer):
    """An existing --state is replaced (RERUN): say so; refuse another model's file (or a non-state file,
    e.g. the model itself named by mistake) unless --fresh. Leaves the personalizer dense."""
    if not os.path.lexists(args.state):
        return
    try:
        personalizer.load_state(args.state)
    except FinePruneError as exc:
        if not args.fresh:
            raise FinePruneError(f"{exc}; personalize would replace it: pass --fresh to replace it, or name "
                                 "another --state") from None
        print(f"note: replacing {args.state} (--fresh): {exc}")
        return
    print(f"note: replacing {args.state} ({personalizer.samples} samples observed before): {RERUN}")
    personalizer.reset()


# How many predictions unit pruning may change on the user's own data before the CLI warns: on the compact
# models the README measures, settings that changed many predictions lowered accuracy.
CHANGED_PREDICTIONS_WARNING = 0.10


def _warn_if_speech(personalizer, sparsity, min_class_fraction):
    """The README's speaker measurements (DS-CNN, 53 speakers) found every expert pruning setting harmful."""
    from .measured import README_SECTION, row

    if personalizer.metadata.sample_rate <= 0:
        return
    if sparsity is not None and sparsity >= 0.02:
        two, five = row("speech", "prune 2% units"), row("speech", "prune 5% units")
        _warn(f"--sparsity {sparsity:g} on a speech model: in the README's speaker measurements ({README_SECTION}; "
              f"MLPerf Tiny DS-CNN, {two.users} speakers) pruning 2% of units lowered mean accuracy {two.change} and "
              f"hurt {two.hurt} speakers, 5% gave {five.personalized}; --sparsity 0 keeps the units, and the "
              "automatic call (no --sparsity) is what helped speakers")
    if min_class_fraction is not None and min_class_fraction > 0:
        unseen = row("speech", "drop unseen classes")
        _warn(f"--min-class-fraction {min_class_fraction:g} on a speech model: in the README's speaker measurements "
              f"even dropping only the classes never predicted lowered mean accuracy {unseen.change} and hurt "
              f"{unseen.hurt} of {unseen.users} speakers")


def _warn_if_predictions_changed(before, after):
    changed = float(np.mean(before != after))
    if changed > CHANGED_PREDICTIONS_WARNING:
        _warn(f"this --sparsity changed the predicted class of {changed:.0%} of your {len(before)} samples; in the "
              "README's measurements, settings that change many predictions lowered "
              "accuracy on compact models. Consider a lower --sparsity, or the automatic call (no --sparsity)")


def _print_dropped_classes(personalizer, kept_before):
    group = personalizer.metadata.output_group
    kept = personalizer.masks[group.name]
    labels = personalizer.labels or [f"class {i}" for i in range(group.units)]
    dropped = [labels[i] for i in np.flatnonzero((kept_before == 1) & (kept == 0))]
    excluded = [labels[i] for i in np.flatnonzero(kept == 0)]
    print(f"dropped {len(dropped)} classes: {', '.join(dropped) or 'none'}"
          + (f"; {len(excluded)} classes excluded in all: {', '.join(excluded)}" if len(excluded) > len(dropped)
             else "") + f"; kept: {', '.join(labels[i] for i in np.flatnonzero(kept))}")


def _personalize_auto(args, personalizer):
    """The default: the label-free automatic choice (recipe.py), from the dense model."""
    x, _, files = _load_data(args, personalizer)
    report = personalizer.personalize(x)
    personalizer.save_state(args.state)
    print(f"observed {len(x)} samples from {len(files)} files\n{report}\nstate saved to {args.state}")


def cmd_evaluate(args):
    personalizer = _open(args)
    slim = personalizer.metadata.slim
    if args.state and slim:
        raise FinePruneError(f"{args.model} is a slim model: its personalization is already in the file (from "
                             f"the state with CRC-32 {slim['state_crc32']:08x}), so --state has nothing to apply; "
                             "evaluate it without --state, or the original export with --state")
    if args.state:
        personalizer.load_state(args.state)
    labels = personalizer.labels
    x, y, _ = _load_data(args, personalizer, labels)
    if y.max() >= personalizer.metadata.num_classes:
        raise FinePruneError(f"class index {int(y.max())} is out of range for {personalizer.metadata.num_classes} classes")
    predicted = np.argmax(personalizer.predict(x, progress=None), axis=-1)
    accuracy = float(np.mean(predicted == y))
    sparsity = _slim_sparsity(personalizer.metadata) if slim else personalizer.sparsity()
    print(f"accuracy {accuracy:.4f} on {len(y)} samples; unit sparsity {sparsity.units:.1%}, "
          f"weights {sparsity.weights:.1%}, MACs {sparsity.macs:.1%}"
          + (" removed (slim model)" if slim else ""))


def _slim_sparsity(meta):
    """A slim file's sparsity against the export it came from, from the units it kept."""
    from .sparsity import measure_sparsity

    masks = np.zeros(meta.num_units, np.float32)
    for group in meta.groups:
        masks[[group.offset + u for u in meta.slim["kept_units"].get(group.name, [])]] = 1.0
    return measure_sparsity(meta, masks)


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
    """Commands that load TensorFlow (those with --verbose) keep its log lines out unless asked; the others
    keep the interpreters' native notes out (without importing TensorFlow)."""
    from .quiet import silence_interpreters, silence_tensorflow

    if hasattr(args, "verbose"):
        silence_tensorflow(args.verbose)
    else:
        silence_interpreters()


def _check_demo_data(args):
    if args.fashion:
        from converters.fashion import find_fashion_mnist

        find_fashion_mnist(args.data)
    else:
        from converters.demo import find_data

        find_data(args.data, args.vision)


def _check_asset_data(args):
    from . import reference_data as rd

    needed = [rd.SPEECH_COMMANDS_TEST, rd.CIFAR10_TEST] + ([rd.MLPERF_KWS] if not args.speech else []) + (
        [rd.MLPERF_RESNET8] if not args.vision else [])
    rd.require_data(needed, args.data, "tflite-fineprune android-assets")


DATA_CHECKS = {"android-assets": _check_asset_data, "demo": _check_demo_data}
COMMANDS = {"android-assets": cmd_android_assets, "demo": cmd_demo, "evaluate": cmd_evaluate, "export": cmd_export,
            "inspect": cmd_inspect, "personalize": cmd_personalize, "slim": cmd_slim}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command in DATA_CHECKS:
            DATA_CHECKS[args.command](args)  # a missing-data error comes before TensorFlow is imported
        _silence_unless_verbose(args)
        COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:  # `tflite-fineprune inspect M | head`: the reader has all it wanted
        return _stdout_closed()
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


def _stdout_closed():
    """Point stdout at /dev/null so that the interpreter's own flush at exit cannot fail again; exit like a
    process ended by SIGPIPE, without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
