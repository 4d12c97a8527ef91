"""ExportOptions: one definition of the export options, shared by export_model, the CLI and the converters."""

import dataclasses
import inspect

import pytest

from tflite_fineprune.converters.command_line import add_export_command, command_parser, export_options
from tflite_fineprune import ExportOptions, FinePruneError
from tflite_fineprune.cli import build_parser
from tflite_fineprune.export.options import options_from_arguments

FLAGS = ["--no-prune-outputs", "--policy", "global", "--no-verify", "--classifier-prototypes", "--couple-depthwise"]


def _converter(argv):
    parser, commands = command_parser("converter", "")
    add_export_command(commands, "mlperf", "")
    return export_options(parser.parse_args(["mlperf", "-o", "x.tflite", *argv]))


def _cli(argv):
    return options_from_arguments(build_parser().parse_args(["export", "m.keras", "-o", "x.tflite", *argv]))


def test_cli_and_converters_read_the_same_flags_into_the_same_options():
    assert dataclasses.replace(_converter(FLAGS), on_stage=None) == _cli(FLAGS)
    assert _cli(FLAGS) == ExportOptions(prune_outputs=False, policy="global", verify=False,
                                        classifier_prototypes=True, couple_depthwise=True)


def test_flags_not_given_leave_the_library_defaults():
    assert _cli([]) == ExportOptions()
    assert dataclasses.replace(_converter([]), on_stage=None) == ExportOptions()
    assert ExportOptions().prune_outputs is None  # wherever the output layer allows it, everywhere


def test_unknown_options_are_refused_by_name():
    with pytest.raises(FinePruneError, match="unknown export option.*prune_output\\b"):
        ExportOptions().with_changes(prune_output=True)


def test_export_model_shows_every_option_in_its_signature():
    from tflite_fineprune import export_model

    parameters = inspect.signature(export_model).parameters
    assert list(parameters)[:3] == ["model", "path", "options"]
    assert {f.name: f.default for f in dataclasses.fields(ExportOptions)} == {
        name: p.default for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
