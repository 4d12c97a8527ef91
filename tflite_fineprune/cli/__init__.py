"""The `tflite-fineprune` command: the parser, the table of sub-commands, and how errors end a run."""

import argparse
import os
import sys

from ..data_fetch import add_parser as add_data_parser
from ..errors import FinePruneError
from ..export.options import add_export_arguments
from ..help_formatter import HelpFormatter
from .commands import (_check_asset_data, _check_demo_data, _check_export_output, _silence_unless_verbose,
                       cmd_android_assets, cmd_demo, cmd_evaluate, cmd_export, cmd_inspect, cmd_slim)
from .model_and_data import _fraction, _runtime_args, printable
from .personalize import RERUN, _personalize_examples, cmd_personalize
from .population import add_parser as add_population_parser


EXIT_ERROR = 2


EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process ended by SIGPIPE


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
                   help="replace the --state file even if it is another model's (or a damaged) state file; "
                        "a file that is not a state file is never replaced")
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

    p = commands.add_parser("demo",
                            help="personalize real pretrained models for real users (speech, --vision, --fashion or "
                            "--fashion-cnn)")
    p.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA, else the one `data fetch` fills); "
                   "with --fashion or --fashion-cnn, the folder with the four Fashion-MNIST *-ubyte.gz files (or its "
                   "fashion-mnist/)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    p.add_argument("--out", default="fineprune-demo", help="folder for the models, CSV and plot")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--vision", action="store_true",
                      help="CIFAR-10 class-subset users with ResNet-8 instead of speakers")
    kind.add_argument("--fashion", action="store_true",
                      help="Fashion-MNIST class-subset users with an over-parameterized MLP (trained first)")
    kind.add_argument("--fashion-cnn", action="store_true",
                      help="Fashion-MNIST class-subset users with a wide BatchNorm convnet (trained first, cached)")

    p = commands.add_parser("android-assets", help="generate the Android demo app's assets (models, users, manifest)")
    p.add_argument("-o", "--output", default=os.path.join("android_demo", "app", "src", "main", "assets"),
                   help="asset folder")
    p.add_argument("--speech", help="speech model .tflite (default: export the MLPerf Tiny DS-CNN)")
    p.add_argument("--vision", help="vision model .tflite (default: export the MLPerf Tiny ResNet-8)")
    p.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA, else the one `data fetch` fills)")
    p.add_argument("--record", help="also write recordings of the app's signature calls here (JVM replay tests)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")

    p = commands.add_parser("evaluate", help="accuracy on DATA/<label>/<file>")
    _runtime_args(p)
    p.add_argument("--state", help="a state file to apply first")
    COMMANDS["data"] = add_data_parser(commands)
    COMMANDS["population"] = add_population_parser(commands)
    _finish_help(commands)
    return parser


EXAMPLES = {
    "export": """example:
  tflite-fineprune export model.keras -o model.tflite --labels labels.txt --prune-outputs
  (keras.applications models: python -m tflite_fineprune.converters.vision keras-app NAME -o X.tflite --prune-outputs,
   which adds the model's own pixel scaling)""",
    "personalize": _personalize_examples,
}


def _finish_help(commands):
    for name, sub in commands.choices.items():
        sub.formatter_class = HelpFormatter
        if name in EXAMPLES and not sub.epilog:
            sub.epilog = EXAMPLES[name]() if callable(EXAMPLES[name]) else EXAMPLES[name]


# Checks that come before TensorFlow is imported: missing data, an output that must not be written.
DATA_CHECKS = {"android-assets": _check_asset_data, "demo": _check_demo_data, "export": _check_export_output}


COMMANDS = {"android-assets": cmd_android_assets, "demo": cmd_demo, "evaluate": cmd_evaluate, "export": cmd_export,
            "inspect": cmd_inspect, "personalize": cmd_personalize, "slim": cmd_slim}


# The packages the TensorFlow side imports; a missing one is an install question, answered in one line.
TENSORFLOW_PACKAGES = ("tensorflow", "keras", "tf_keras", "h5py")


def main(argv=None):
    _never_fail_to_encode()
    args = build_parser().parse_args(argv)
    try:
        if args.command in DATA_CHECKS:
            DATA_CHECKS[args.command](args)  # a missing-data error comes before TensorFlow is imported
        _silence_unless_verbose(args)
        COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:  # `tflite-fineprune inspect M | head`: the reader has all it wanted
        return _stdout_closed()
    except (FinePruneError, OSError) as exc:
        return _error(exc)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in TENSORFLOW_PACKAGES:
            raise
        return _error(f"`tflite-fineprune {args.command}` needs TensorFlow, which this installation lacks "
                      f"({exc}); install it with: pip install \"tflite-fineprune[export]\" (from a checkout: "
                      "pip install \".[export]\")")
    except KeyboardInterrupt:
        print("tflite-fineprune: interrupted", file=sys.stderr)
        return 130
    return 0


def _error(exc):
    """One line on stderr, whatever the message holds (file names are escaped: `printable`)."""
    print(f"tflite-fineprune: error: {printable(exc)}", file=sys.stderr, flush=True)
    return EXIT_ERROR


def _never_fail_to_encode():
    """A character the terminal's encoding lacks is written as an escape, not a UnicodeEncodeError
    (PYTHONIOENCODING=ascii, or strict UTF-8 and a file name that is not UTF-8)."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, OSError):
                pass


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
