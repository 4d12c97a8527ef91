"""Dormant pruning's graph side: the `prune_dormant` signature."""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...metadata import ROLE_HIDDEN
from ...export.levers.base import ExportLever, function


class DormantPruning(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        return True  # every export carries it

    def _prune_dormant(self, threshold):
        """Prune every hidden unit whose activity is below `threshold`; each layer keeps its most active unit.

        The paper's criterion taken literally: how much is pruned follows the
        data (an over-parameterized layer loses many units, a compact one none).
        """
        module = self.module
        activity = module.activity()
        pieces = []
        for group in module.layout:
            part = slice(group.offset, group.offset + group.units)
            m, a = module.masks[part], activity[part]
            if group.role != ROLE_HIDDEN:
                pieces.append(m)
                continue
            keep = tf.cast(a >= threshold, tf.float32) * m
            best = tf.one_hot(tf.argmax(tf.where(m > 0.5, a, tf.fill(tf.shape(a), -1.0))), group.units)
            pieces.append(tf.where(tf.reduce_sum(keep) > 0.5, keep, best))
        return module.commit_masks(tf.concat(pieces, axis=0))

    def signatures(self, specs):
        return [(sig.PRUNE_DORMANT, function(self._prune_dormant, specs.scalar))]


GRAPH = DormantPruning
