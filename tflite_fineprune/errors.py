"""The one exception type the library raises for bad models, data and state."""


class FinePruneError(Exception):
    """A model, input, state file or setting that tflite-fineprune cannot use.

    The message always says what was expected and what was received, so the
    command-line tool can print it as a one-line error.
    """
