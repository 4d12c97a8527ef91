"""Mean compensation's graph side: `sums` and `fill`, the fill added to masked hidden units, `set_compensation`.

A pruned hidden unit outputs its mean activation over the observed data
(frozen when it is pruned) instead of 0: still a constant, so it folds into the
next layer's bias, but the next layer keeps its expected input.
"""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...metadata import ROLE_OUTPUT
from ...export.activity import batch_sums, per_sample_mean
from ...export.levers.base import ExportLever, function


class MeanCompensation(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        return True if options.mean_compensation else None

    @staticmethod
    def metadata_fields(config, graph):
        return {"mean_compensation": True}

    def __init__(self, module, parts, config):
        super().__init__(module, parts, config)
        self.sums = self._variable("sums", tf.zeros([module.units], tf.float32))
        self.fill = self._variable("fill", tf.zeros([module.units], tf.float32))
        self._group_sums = []

    def masked(self, value, mask, group):
        if group.role == ROLE_OUTPUT:
            return None
        return value * mask + self.fill[group.offset:group.offset + group.units]

    def observe_group(self, group, value):
        if group.role == ROLE_OUTPUT:
            self._group_sums.append(tf.zeros([group.units]))
            return
        self._group_sums.append(per_sample_mean(value, group.units))

    def collect(self, y, taps):
        self.sums.assign_add(batch_sums(self._group_sums))
        self._group_sums = []

    def before_commit(self, new_masks):
        """Newly pruned units freeze their mean; earlier ones keep theirs."""
        masks = self.module.masks
        newly = tf.logical_and(new_masks < 0.5, masks > 0.5)
        mean = self.sums / tf.maximum(self.module.samples, 1.0)
        self.fill.assign(tf.where(newly, mean, self.fill * (1.0 - new_masks)))

    def reset(self, zero_counts, restore):
        self.sums.assign(tf.where(zero_counts, tf.zeros_like(self.sums), self.sums))
        self.fill.assign(tf.where(restore, tf.zeros_like(self.fill), self.fill))

    def state(self):
        return {sig.SUMS: self.sums.read_value(), sig.FILL: self.fill.read_value()}

    def _set_compensation(self, sums, fill):
        self.sums.assign(sums)
        self.fill.assign(fill * (1.0 - self.module.masks))  # kept units never carry a fill value
        return {sig.FILL: self.fill.read_value()}

    def signatures(self, specs):
        return [(sig.SET_COMPENSATION, function(self._set_compensation, specs.vector, specs.vector))]


GRAPH = MeanCompensation
