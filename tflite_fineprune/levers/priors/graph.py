"""Prior correction's graph side: per-class log weights on the output, EM sums in `collect`, two signatures.

The output is reweighted by w = user prior / training prior (uniform),
estimated label-free by EM (Saerens et al. 2002): `collect` sums the reweighted
class posteriors, `update_priors` turns them into the next weights.
"""

import tensorflow as tf

from ... import signatures as sig
from ...errors import ModelError
from . import LEVER
from ...metadata import OUTPUT_PROBABILITIES
from ...export.levers.base import ExportLever, function

PRIOR_FLOOR = 1e-6  # smallest class prior EM may estimate (keeps log weights finite)


class PriorCorrection(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        if not options.prior_correction:
            return None
        if len(graph.shapes[graph.outputs[0]]) != 2:
            raise ModelError("prior_correction needs a (batch, classes) output")
        return True

    @staticmethod
    def metadata_fields(config, graph):
        return {"prior_correction": True}

    def __init__(self, module, parts, config):
        super().__init__(module, parts, config)
        classes = module.num_classes
        self.log_weights = self._variable("log_weights", tf.zeros([classes], tf.float32))
        self.soft_counts = self._variable("soft_counts", tf.zeros([classes], tf.float32))

    def output(self, y):
        if self.module.output_kind == OUTPUT_PROBABILITIES:
            weighted = y * tf.exp(self.log_weights)
            return weighted / tf.reduce_sum(weighted, axis=-1, keepdims=True)
        return y + self.log_weights

    def collect(self, y, taps):
        self.soft_counts.assign_add(tf.reduce_sum(self.module.posteriors(y), axis=0))

    def reset(self, zero_counts, restore):
        self.soft_counts.assign(tf.where(zero_counts, tf.zeros_like(self.soft_counts), self.soft_counts))
        self.log_weights.assign(tf.where(restore, tf.zeros_like(self.log_weights), self.log_weights))

    def state(self):
        return {sig.LOG_WEIGHTS: self.log_weights.read_value(), sig.SOFT_COUNTS: self.soft_counts.read_value()}

    def _update_priors(self, token):
        """One EM step: the class posteriors summed since the last step become the new prior."""
        total = tf.reduce_sum(self.soft_counts) + tf.cast(token * 0, tf.float32)
        prior = self.soft_counts / tf.maximum(total, 1e-12)
        updated = tf.math.log(tf.maximum(prior, PRIOR_FLOOR) * float(self.module.num_classes))
        # Without observed samples keep the current weights.
        self.log_weights.assign(tf.where(total > 0, updated, self.log_weights))
        self.soft_counts.assign(tf.zeros_like(self.soft_counts))
        return {sig.LOG_WEIGHTS: self.log_weights.read_value()}

    def _set_priors(self, log_weights, soft_counts):
        self.log_weights.assign(log_weights)
        self.soft_counts.assign(soft_counts)
        return {sig.LOG_WEIGHTS: self.log_weights.read_value()}

    def signatures(self, specs):
        classes = tf.TensorSpec([self.module.num_classes], tf.float32)
        return [(sig.UPDATE_PRIORS, function(self._update_priors, specs.flag)),
                (sig.SET_PRIORS, function(self._set_priors, classes, classes))]


GRAPH = PriorCorrection
