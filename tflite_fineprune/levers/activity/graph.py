"""Activity pruning's graph side: the `prune` signature, through the in-graph policy (export/pruning_policy.py)."""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...export.pruning_policy import POLICIES
from ...export.levers.base import ExportLever, function


class ActivityPruning(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        return POLICIES[options.policy]

    def _prune(self, sparsity):
        module = self.module
        sparsity = tf.clip_by_value(sparsity, 0.0, 0.999999)
        return module.commit_masks(self.config(module.activity(), module.masks, sparsity, module.layout))

    def signatures(self, specs):
        return [(sig.PRUNE, function(self._prune, specs.scalar))]


GRAPH = ActivityPruning
