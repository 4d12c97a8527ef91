"""The exceptions the library raises: one base type, and a subclass for each kind of problem a caller may want to
tell apart (a bad model file, a bad state file, bad input data, a model slim cannot rewrite).

Catch `FinePruneError` to handle them all; the command-line tool prints any of them as one line and exits 2.

Which kind a problem is, where it is not plain from the names:

- `ModelError`: a .tflite that is missing, not TFLite, damaged, foreign or contradicts its metadata; an export
  that lacks what a call needs (a slim model asked to observe, an export without magnitude pruning asked to
  prune by magnitude); a Keras model the exporter cannot convert (not loadable, an unsupported layer, no
  prunable units); a training checkpoint that does not fit its network.
- `StateError`: a state file or `State` object, including one whose file is missing or unreadable.
- `InputError`: samples, data files and data folders (also `representative_data`, `reference_data`, a
  population's user folders and manifest, the demo data folders a converter reads).
- `SlimError`: a graph that slim cannot rewrite (`Unslimmable`, an op or weight type it does not handle).
- The base `FinePruneError`: settings and arguments (a sparsity of 1.5, a recipe text, a CLI option), calls in
  the wrong order (prune before observe), output paths that may not be written, a missing dependency or
  interpreter, and `data fetch` (downloads, archives, the layout of fetched datasets).
"""


class FinePruneError(Exception):
    """A model, input, state file or setting that tflite-fineprune cannot use.

    The message always says what was expected and what was received, so the
    command-line tool can print it as a one-line error. Settings out of range
    (a sparsity of 1.5, a negative batch size) raise this base type.
    """


class ModelError(FinePruneError):
    """A model file that cannot be used: not a TFLite file, damaged, not a tflite-fineprune export, or one whose
    self-description contradicts its graph."""


class StateError(FinePruneError):
    """A state file that cannot be loaded into this model: damaged, truncated, another model's, or of a format
    version this release does not read. The personalizer's state is left as it was."""


class InputError(FinePruneError):
    """Input data that cannot be used: wrong shape, dtype or sample rate, non-finite values, no samples, or files
    that cannot be read as the model's inputs."""


class SlimError(FinePruneError):
    """A model (or a part of one) that `slim` cannot rewrite without the pruned units."""


class NonFiniteActivity(InputError):
    """A batch whose values, finite themselves, overflowed inside the model: the running sums that `observe`
    keeps would be infinite or NaN (and the state could not be saved). `batch` is its index in the call."""

    def __init__(self, message, batch):
        super().__init__(message)
        self.batch = batch
