"""What every lever's graph side is: the variables it adds to the module, its hooks, its signatures.

The module (export/module.py) runs the masked forward pass and the core
routine (masks, counters, samples); each lever the export carries is one
object of an `ExportLever` subclass (the `GRAPH` of its folder's graph.py,
`tflite_fineprune/levers/<name>/graph.py`) that

- creates its variables on the module, under the names the file keeps
  (`_variable`; the module must own them for the SavedModel to track them);
- hooks into the forward pass (`mapping`, `before_layer`, `masked`, `output`);
- adds to `collect` (`observe_group` per unit group, `collect` after the
  counters), to a pruning step (`before_commit`), to `reset` and `get_state`;
- adds its signatures one at a time (`signatures`).

Every hook runs where the graph always did, so an export is byte-identical
to one made before the levers were split (checked then by the SHA-256 of
exports with every lever on and off). A new lever only adds to exports that
use it.
"""

from __future__ import annotations

import tensorflow as tf


def function(method, *specs):
    """A signature's tf.function; no Python control flow depends on tensors, so autograph only costs time."""
    return tf.function(method, input_signature=list(specs), autograph=False)


class ExportLever:
    """Base: a lever that adds nothing. `lever` is its descriptor (`LEVER` of `tflite_fineprune/levers/<name>/`)."""

    lever = None

    @classmethod
    def configure(cls, graph, options, input_dtype):
        """What the export needs for this lever from the `ExportOptions` (and the graph), or None when it is off."""
        return None

    @staticmethod
    def enabled(layout) -> bool:
        """Whether a configured lever applies to the planned unit groups (`layout`)."""
        return True

    @staticmethod
    def metadata_fields(config, graph) -> dict:
        """ModelMetadata fields this lever sets (only those it owns)."""
        return {}

    @staticmethod
    def fingerprint_part(config, graph):
        """What the lever adds to the model fingerprint, or None (an export without it keeps its fingerprint)."""
        return None

    def __init__(self, module, parts, config):
        """`module` is the FinePruneModule being built, `parts` its ModelParts."""
        self.module = module
        self.config = config

    def _variable(self, name, value):
        variable = tf.Variable(value, name=name)
        setattr(self.module, name, variable)
        return variable

    # -- hooks (defaults add nothing) ----------------------------------------

    def mapping(self, mapping):
        """Point Keras variables at the lever's variables in `mapping` (id → (variable, value))."""

    def before_layer(self, node, args, taps):
        """Called with a layer's arguments before it runs; may record tensors in `taps`."""

    def masked(self, value, mask, group):
        """The masked value of `group`, or None to leave it to another lever (default: value × mask)."""
        return None

    def output(self, y):
        """The model output after the lever's reweighting."""
        return y

    def observe_group(self, group, value):
        """`collect`: the masked tensor of one unit group."""

    def collect(self, y, taps):
        """`collect`: after the activity counters are added, before the sample count; extra outputs (a dict) or None."""

    def before_commit(self, new_masks):
        """A pruning step is about to set `new_masks`."""

    def reset(self, zero_counts, restore):
        """`reset`: clear what was collected (`zero_counts`) and/or go back to the trained model (`restore`)."""

    def state(self) -> dict:
        """`get_state` outputs: the lever's state block, named after its `State` fields."""
        return {}

    def signatures(self, specs) -> list:
        """`(name, tf.function)` pairs, in the order they are added; `specs` holds the module's TensorSpecs."""
        return []
