"""The help layout of every command: `tflite-fineprune`'s sub-commands and the converters'."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (but not the uninformative None/False/empty ones) and keeps the examples' line breaks;
    the converters' commands use it too."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == ():
            return action.help
        return super()._get_help_string(action)
