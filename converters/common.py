"""What the converters share: their command-line plumbing and one-line command errors."""

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
    """A sub-command that writes one `.tflite`: -o/--output and --prune-outputs come with it."""
    command = commands.add_parser(name, help=help)
    command.add_argument("-o", "--output", required=True, help="the .tflite to write")
    command.add_argument("--prune-outputs", action="store_true", help="make output classes prunable too")
    command.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    return command


def export_options(args):
    """`export_model` options every converter command passes: class pruning, and a line per export stage."""
    from tflite_fineprune.progress import print_stage

    return {"prune_outputs": args.prune_outputs, "on_stage": print_stage}
