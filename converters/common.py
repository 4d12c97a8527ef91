"""What the converters share: their command-line plumbing and one-line command errors."""

import argparse
import sys

from tflite_fineprune.errors import FinePruneError


def run_command(prog, action):
    """Run a converter command; a `FinePruneError` becomes one line on stderr and exit status 2."""
    try:
        action()
    except FinePruneError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def command_parser(prog, doc):
    """An argparse parser with sub-commands for a converter module."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser, parser.add_subparsers(dest="command", required=True)


def add_export_command(commands, name, help):
    """A sub-command that writes one `.tflite`: -o/--output, --prune-outputs and --quantize come with it."""
    from tflite_fineprune.cli import HelpFormatter  # shows each option's default

    command = commands.add_parser(name, help=help, formatter_class=HelpFormatter)
    command.add_argument("-o", "--output", required=True, help="the .tflite to write")
    command.add_argument("--prune-outputs", action=argparse.BooleanOptionalAction, default=True,
                         help="make output classes prunable, so that personalize may exclude classes")
    command.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    command.add_argument("--quantize", choices=("int8",), help="int8 weights (dynamic range; docs/quantization.md)")
    command.add_argument("--representative-data", help=".npy samples [N, *input_shape] to check the int8 export on")
    command.add_argument("--classifier-prototypes", action="store_true",
                         help="add T3A classifier prototypes (adapt_classifier; docs/personalization.md)")
    command.add_argument("--couple-depthwise", action="store_true",
                         help="one unit group for a layer and the depthwise layer it feeds (docs/performance.md)")
    return command


def export_options(args):
    """`export_model` options every converter command passes: class pruning, quantization, a line per stage."""
    from tflite_fineprune.export.quantize import load_representative_file
    from tflite_fineprune.progress import print_stage

    options = {"prune_outputs": args.prune_outputs, "on_stage": print_stage, "quantize": args.quantize,
               "representative_data": load_representative_file(args.representative_data)}
    if args.classifier_prototypes:  # only when asked, so that every other export keeps its options
        options["classifier_prototypes"] = True
    if args.couple_depthwise:
        options["couple_depthwise"] = True
    return options
