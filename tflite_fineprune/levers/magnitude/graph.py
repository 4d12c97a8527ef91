"""Magnitude pruning's graph side: `magnitudes` counted by `collect`, the outgoing norms, `prune_magnitude`."""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...metadata import ROLE_HIDDEN
from .outgoing_norms import outgoing_norms
from ...export.activity import batch_sums, per_sample_mean
from ...export.pruning_policy import layerwise
from ...export.levers.base import ExportLever, function


class MagnitudePruning(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        return True if options.magnitude_pruning else None

    @staticmethod
    def enabled(layout):
        return any(g.role == ROLE_HIDDEN for g in layout)

    @staticmethod
    def fingerprint_part(config, graph):
        return "magnitude_pruning"

    def __init__(self, module, parts, config):
        super().__init__(module, parts, config)
        self._norms = tf.constant(outgoing_norms(parts.graph, parts.plan, parts.layout))
        self._non_negative = {g.name: planned.non_negative for g, planned in zip(parts.layout, parts.plan.groups)}
        self.magnitudes = self._variable(sig.MAGNITUDES, tf.zeros([module.units], tf.float32))
        self._pieces = []

    def observe_group(self, group, value):
        if group.role != ROLE_HIDDEN:
            self._pieces.append(tf.zeros([group.units]))
            return
        magnitude = value if self._non_negative[group.name] else tf.abs(value)
        self._pieces.append(per_sample_mean(magnitude, group.units))

    def collect(self, y, taps):
        self.magnitudes.assign_add(batch_sums(self._pieces))
        self._pieces = []

    def reset(self, zero_counts, restore):
        self.magnitudes.assign(tf.where(zero_counts, tf.zeros_like(self.magnitudes), self.magnitudes))

    def state(self):
        return {sig.MAGNITUDES: self.magnitudes.read_value()}

    def _prune_magnitude(self, sparsity):
        module = self.module
        sparsity = tf.clip_by_value(sparsity, 0.0, 0.999999)
        scores = self.magnitudes / tf.maximum(module.samples, 1.0) * self._norms
        return module.commit_masks(layerwise(scores, module.masks, sparsity, module.layout))

    def _set_magnitudes(self, magnitudes):
        self.magnitudes.assign(magnitudes)
        return {sig.MAGNITUDES: self.magnitudes.read_value()}

    def signatures(self, specs):
        return [(sig.PRUNE_MAGNITUDE, function(self._prune_magnitude, specs.scalar)),
                (sig.SET_MAGNITUDES, function(self._set_magnitudes, specs.vector))]


GRAPH = MagnitudePruning
