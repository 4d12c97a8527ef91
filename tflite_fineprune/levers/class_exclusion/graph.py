"""Class exclusion's graph side: the output group's masks and the `prune_outputs` signature."""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...metadata import OUTPUT_PROBABILITIES, ROLE_OUTPUT
from ...export.pruning_policy import output_by_frequency
from ...export.levers.base import ExportLever, function

EXCLUDED_LOGIT = -1e9  # a pruned class's logit: far below any real logit


class ClassExclusion(ExportLever):
    """On when the plan made the output layer's units a group (export option prune_outputs)."""

    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        return True  # the plan decides: see `enabled`

    @staticmethod
    def enabled(layout):
        return any(g.role == ROLE_OUTPUT for g in layout)

    def masked(self, value, mask, group):
        if group.role != ROLE_OUTPUT:
            return None
        if self.module.output_kind == OUTPUT_PROBABILITIES:
            kept = value * mask
            return kept / tf.reduce_sum(kept, axis=-1, keepdims=True)
        # Multiplying a logit by 0 does not exclude its class; push it far down instead.
        return value * mask + (1.0 - mask) * EXCLUDED_LOGIT

    def _prune_outputs(self, min_fraction):
        module = self.module
        group = next(g for g in module.layout if g.role == ROLE_OUTPUT)
        module.masks.assign(output_by_frequency(module.activity(), module.masks, min_fraction, group))
        return {sig.MASKS: module.masks.read_value()}

    def signatures(self, specs):
        return [(sig.PRUNE_OUTPUTS, function(self._prune_outputs, specs.scalar))]


GRAPH = ClassExclusion
