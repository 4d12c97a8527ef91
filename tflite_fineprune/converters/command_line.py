"""What the converters share: their command-line plumbing and one-line command errors."""

import argparse
import sys

from ..errors import FinePruneError
from ..export.options import FLAGS as EXPORT_FLAGS, ExportOptions, add_export_arguments, \
    options_from_arguments


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
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser, parser.add_subparsers(dest="command", required=True)


def add_export_command(commands, name, help):
    """A sub-command that writes one `.tflite`: -o/--output and the export flags of `tflite-fineprune export`."""
    from ..help_formatter import HelpFormatter  # shows each option's default

    command = commands.add_parser(name, help=help, formatter_class=HelpFormatter)
    command.add_argument("-o", "--output", required=True, help="the .tflite to write")
    command.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    # The converters fix their models' input shapes; every other flag is the one ExportOptions defines.
    add_export_arguments(command, [field for field in EXPORT_FLAGS if field != "input_shape"])
    return command


def export_options(args):
    """The `ExportOptions` of a converter command's flags, printing a line per stage."""
    from ..progress import print_stage

    return options_from_arguments(args, on_stage=print_stage)


def as_options(options=None, **changes):
    """`options` (an `ExportOptions`, default: the defaults) with `changes`: what the converters' functions take."""
    return (options or ExportOptions()).with_changes(**changes)
