"""The `tflite-fineprune` command."""

import argparse
import os
import sys

import numpy as np

from .errors import FinePruneError
from .interpreters import BACKENDS
from .metadata import POLICY_NAMES

EXIT_ERROR = 2


def _parse_shape(text):
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 96,96,3, got {text!r}") from None


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
    p.add_argument("--input-shape", type=_parse_shape, help="input shape without batch, e.g. 96,96,3")
    p.add_argument("--prune-outputs", action=argparse.BooleanOptionalAction, default=True,
                   help="make output classes prunable (default)")
    p.add_argument("--policy", default="layerwise", choices=POLICY_NAMES)
    p.add_argument("--no-verify", action="store_true", help="skip the Keras-vs-TFLite check")

    p = commands.add_parser("inspect", help="print the unit groups of an exported model")
    p.add_argument("model")

    p = commands.add_parser("personalize", help="observe a user's unlabeled data, personalize, save the state")
    _runtime_args(p)
    p.add_argument("--sparsity", type=_fraction,
                   help="expert: prune this fraction of each layer's units instead of the automatic choice")
    p.add_argument("--state", required=True, help="state file (loaded if it exists, then overwritten)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing state file")
    p.add_argument("--min-class-fraction", type=_fraction,
                   help="also prune classes predicted on less than this fraction of the data")

    p = commands.add_parser("demo", help="personalize real pretrained models for real users (speech, or --vision)")
    p.add_argument("--data", help="reference data folder (default: $FINEPRUNE_DATA, else ../shared/data)")
    p.add_argument("--out", default="fineprune-demo", help="folder for the models, CSV and plot")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--vision", action="store_true", help="CIFAR-10 class-subset users with ResNet-8 instead of speakers")
    kind.add_argument("--fashion", action="store_true",
                      help="Fashion-MNIST class-subset users with an over-parameterized MLP (trained first)")

    p = commands.add_parser("evaluate", help="accuracy on DATA/<label>/<file>")
    _runtime_args(p)
    p.add_argument("--state", help="a state file to apply first")
    return parser


def _runtime_args(p):
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--data", required=True, help="folder of .npy, image or .wav files")
    p.add_argument("--preprocess", help="module:function turning a decoded file into samples")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS)
    p.add_argument("--batch-size", type=int, default=32)


def cmd_export(args):
    from .export import export_model

    labels = None
    if args.labels:
        from .state import read_file

        labels = [line.strip() for line in read_file(args.labels, "labels file").decode("utf-8").splitlines()
                  if line.strip()]
    report = export_model(args.model, args.output, labels=labels, input_shape=args.input_shape,
                          prune_outputs=args.prune_outputs, policy=args.policy, verify=not args.no_verify)
    print(report)


def cmd_inspect(args):
    from .metadata import read_model_metadata
    from .state import read_file

    meta = read_model_metadata(read_file(args.model, "model"), source=args.model)
    print(f"{args.model}: tflite-fineprune format {meta.format_version}, fingerprint {meta.fingerprint[:16]}")
    print(f"input  {meta.input_name} {list(meta.input_shape)} {meta.input_dtype}")
    print(f"output {meta.output_name} [{meta.num_classes}] {meta.output_kind}"
          + (f", labels: {', '.join(meta.labels)}" if meta.labels else ""))
    print(f"policy {meta.policy}; signatures: {', '.join(meta.signatures)}")
    print(f"weights {meta.total_weights:,}  MACs/sample {meta.total_macs:,}")
    header = f"{'#':>3}  {'layer':<28} {'class':<16} {'role':<6} {'units':>6} {'offset':>7} {'positions':>9} {'weights/unit':>12} {'MACs/unit':>12}"
    print(header)
    print("-" * len(header))
    for i, g in enumerate(meta.groups):
        print(f"{i:>3}  {g.name[:28]:<28} {g.layer_class[:16]:<16} {g.role:<6} {g.units:>6} {g.offset:>7} "
              f"{g.positions:>9} {g.weights_per_unit:>12.1f} {g.macs_per_unit:>12.0f}")
    print(f"{len(meta.groups)} groups, {meta.num_units} units")
    if meta.excluded:
        print("not prunable:")
        for name, reason in meta.excluded:
            print(f"  {name}: {reason}")


def _open(args):
    from .runtime import Personalizer

    return Personalizer(args.model, backend=args.backend, batch_size=args.batch_size)


def _load_data(args, personalizer, labels=None):
    """The --data folder decoded into the model's input shape, dtype and sample rate."""
    from .datafiles import load_folder

    meta = personalizer.metadata
    return load_folder(args.data, meta.input_shape[1:], args.preprocess, labels=labels, dtype=meta.input_dtype,
                       sample_rate=meta.sample_rate)


def cmd_personalize(args):
    from .inputs import check_sparsity

    if args.sparsity is None and args.min_class_fraction is None:
        return _personalize_auto(args)
    check_sparsity(args.sparsity or 0.0)
    if args.min_class_fraction is not None:
        check_sparsity(args.min_class_fraction, "--min-class-fraction")
    personalizer = _open(args)
    if args.state and os.path.exists(args.state) and not args.fresh:
        personalizer.load_state(args.state)
        print(f"continuing from {args.state} ({personalizer.samples} samples observed before)")
    x, _, files = _load_data(args, personalizer)
    personalizer.observe(x)
    sparsity = personalizer.prune(args.sparsity) if args.sparsity is not None else personalizer.sparsity()
    if args.min_class_fraction is not None:
        sparsity = personalizer.prune_outputs(args.min_class_fraction)
    personalizer.save_state(args.state)
    print(f"observed {len(x)} samples from {len(files)} files; pruned {sparsity.pruned_units}/{sparsity.total_units} "
          f"units (unit sparsity {sparsity.units:.1%}, weights {sparsity.weights:.1%}, MACs {sparsity.macs:.1%}); "
          f"state saved to {args.state}")


def _personalize_auto(args):
    """The default: the label-free automatic choice (recipe.py), from the dense model."""
    personalizer = _open(args)
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


def cmd_demo(args):
    from converters.demo import run_demo

    run_demo(args.data, args.out, args.vision, args.fashion)


COMMANDS = {"demo": cmd_demo, "export": cmd_export, "inspect": cmd_inspect, "personalize": cmd_personalize, "evaluate": cmd_evaluate}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
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
