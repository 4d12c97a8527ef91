"""Normalization shift's graph side (relative AdaBN; the formulas in export/normalization.py).

Adaptable BatchNorm layers read their statistics from `norm_mean`/`norm_var`;
`collect` accumulates each BN input's moments relative to the trained mean.
"""

import numpy as np
import tensorflow as tf

from ... import signatures as sig
from ...errors import InputError
from . import LEVER
from ...export.normalization import (VARIANCE_FLOOR, normalization_layers, reference_moments, trained_statistics,
                             typicality_limits)
from ...export.levers.base import ExportLever, function


class NormalizationShift(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        """Trained and reference statistics of the adaptable BN layers (a dict), or None."""
        if options.reference_data is None:
            return None
        shape = graph.shapes[graph.inputs[0]]
        x = np.asarray(options.reference_data)
        if x.ndim < 1 or x.shape[1:] != tuple(shape[1:]) or len(x) < 2 or x.dtype.kind not in "fiu":
            raise InputError(f"reference_data must be at least 2 numeric samples of shape {tuple(shape[1:])}, "
                             f"got an array of shape {x.shape} and dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise InputError("reference_data contains NaN or infinite values")
        nodes = normalization_layers(graph)
        if not nodes:
            return None
        mean, var, sample_means = reference_moments(graph, nodes, x.astype(input_dtype))
        return {"nodes": nodes, "trained": trained_statistics(nodes), "reference": (mean, var),
                "typicality_limits": typicality_limits(sample_means, nodes, mean, var)}

    @staticmethod
    def metadata_fields(config, graph):
        return {"normalization_layers": tuple((n.name, n.channels, n.offset) for n, _ in config["nodes"])}

    @staticmethod
    def fingerprint_part(config, graph):
        return [[n.name, n.channels, n.offset] for n, _ in config["nodes"]]

    def __init__(self, module, parts, config):
        super().__init__(module, parts, config)
        self.nodes = list(config["nodes"])
        self.channels = sum(norm.channels for norm, _ in self.nodes)
        self._norm_of = {id(node): norm for norm, node in self.nodes}
        b = self.channels
        as_f32 = lambda v: tf.constant(np.asarray(v, np.float32))  # noqa: E731
        self._trained_mean, self._trained_var = map(as_f32, config["trained"])
        self._reference_mean, self._reference_var = map(as_f32, config["reference"])
        self._typicality_limits = config.get("typicality_limits")
        # The statistics infer/collect use (start as the trained ones), and the user's moments of each
        # BN input, accumulated relative to the trained mean so that E[x²] - E[x]² keeps its precision.
        self.norm_mean = self._variable("norm_mean", self._trained_mean)
        self.norm_var = self._variable("norm_var", self._trained_var)
        self.norm_sums = self._variable("norm_sums", tf.zeros([b]))
        self.norm_squares = self._variable("norm_squares", tf.zeros([b]))
        self.norm_count = self._variable("norm_count", tf.zeros([b]))

    def mapping(self, mapping):
        for norm, node in self.nodes:
            part = slice(norm.offset, norm.offset + norm.channels)
            mapping[id(node.layer.moving_mean)] = (node.layer.moving_mean, self.norm_mean[part])
            mapping[id(node.layer.moving_variance)] = (node.layer.moving_variance, self.norm_var[part])

    def before_layer(self, node, args, taps):
        norm = self._norm_of.get(id(node))
        if norm is not None:
            taps.setdefault("moments", {})[norm.name] = self._input_moments(args[0], norm)
            taps.setdefault("typicality", []).append(self._typicality(args[0], norm))

    def _typicality(self, value, norm):
        """Per sample: mean over channels of (its channel mean − μ_ref)² / σ²_ref (`layer_typicality`)."""
        part = slice(norm.offset, norm.offset + norm.channels)
        means = tf.reduce_mean(tf.reshape(value, [tf.shape(value)[0], -1, norm.channels]), axis=1)
        gap = means - self._reference_mean[part]
        return tf.reduce_mean(gap * gap / tf.maximum(self._reference_var[part], VARIANCE_FLOOR), axis=1)

    def _input_moments(self, value, norm):
        """Per-channel sum, sum of squares (both relative to the trained mean) and count of a BN input."""
        flat = tf.reshape(value, [-1, norm.channels])
        centered = flat - self._trained_mean[norm.offset:norm.offset + norm.channels]
        count = tf.cast(tf.shape(flat)[0], tf.float32) * tf.ones([norm.channels])
        return tf.reduce_sum(centered, axis=0), tf.reduce_sum(centered * centered, axis=0), count

    def collect(self, y, taps):
        parts = [taps["moments"][norm.name] for norm, _ in self.nodes]
        self.norm_sums.assign_add(tf.concat([p[0] for p in parts], axis=0))
        self.norm_squares.assign_add(tf.concat([p[1] for p in parts], axis=0))
        self.norm_count.assign_add(tf.concat([p[2] for p in parts], axis=0))
        if self._typicality_limits is None:  # configured without limits: no extra output
            return {}
        per_layer, combined = self._typicality_limits
        scores = tf.stack(taps["typicality"], axis=1) / tf.constant(np.asarray(per_layer, np.float32))
        return {sig.TYPICALITY: tf.reduce_max(scores, axis=1) / combined}

    def reset(self, zero_counts, restore):
        for variable in (self.norm_sums, self.norm_squares, self.norm_count):
            variable.assign(tf.where(zero_counts, tf.zeros_like(variable), variable))
        self.norm_mean.assign(tf.where(restore, self._trained_mean, self.norm_mean))
        self.norm_var.assign(tf.where(restore, self._trained_var, self.norm_var))

    def state(self):
        return {sig.NORM_SUMS: self.norm_sums.read_value(), sig.NORM_SQUARES: self.norm_squares.read_value(),
                sig.NORM_COUNT: self.norm_count.read_value(), sig.NORM_MEAN: self.norm_mean.read_value(),
                sig.NORM_VAR: self.norm_var.read_value()}

    def _adapt_normalization(self, strength):
        """Relative AdaBN with the moments collected so far; channels without data keep the trained values."""
        count = tf.maximum(self.norm_count, 1.0)
        shift = self.norm_sums / count
        user_mean = self._trained_mean + shift
        user_var = tf.maximum(self.norm_squares / count - shift * shift, VARIANCE_FLOOR)
        mean = self._trained_mean + strength * (user_mean - self._reference_mean)
        ratio = user_var / tf.maximum(self._reference_var, VARIANCE_FLOOR)
        var = self._trained_var * tf.exp(strength * tf.math.log(ratio))
        seen = self.norm_count > 0
        self.norm_mean.assign(tf.where(seen, mean, self._trained_mean))
        self.norm_var.assign(tf.where(seen, var, self._trained_var))
        return {sig.NORM_MEAN: self.norm_mean.read_value(), sig.NORM_VAR: self.norm_var.read_value()}

    def _set_normalization(self, norm_sums, norm_squares, norm_count, norm_mean, norm_var):
        self.norm_sums.assign(norm_sums)
        self.norm_squares.assign(norm_squares)
        self.norm_count.assign(norm_count)
        self.norm_mean.assign(norm_mean)
        self.norm_var.assign(norm_var)
        return {sig.NORM_MEAN: self.norm_mean.read_value()}

    def signatures(self, specs):
        channels = tf.TensorSpec([self.channels], tf.float32)
        return [(sig.ADAPT_NORMALIZATION, function(self._adapt_normalization, specs.scalar)),
                (sig.SET_NORMALIZATION, function(self._set_normalization, *[channels] * 5))]


GRAPH = NormalizationShift
