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
        self._reference_var_np = np.asarray(config["reference"][1], np.float64)
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
            taps.setdefault("moments", {})[norm.name] = self._per_sample_moments(args[0], norm)

    def _per_sample_moments(self, value, norm):
        """Per sample and channel of a BN input, over its positions: the mean, and the mean square about the
        trained mean (each [batch, 1, 1, channels]); and the number of positions.

        The only passes over the whole tensor: two spatial MEANs (keepdims, the form XNNPACK delegates) and a
        SQUARED_DIFFERENCE. The moments and the typicality are computed in `collect`, once for all layers
        (benchmarks/overhead.py, docs/performance.md).
        """
        trained = self._trained_mean[norm.offset:norm.offset + norm.channels]
        static = [int(d) if d is not None else None for d in value.shape[1:-1]]
        positions = int(np.prod(static)) if None not in static else tf.cast(
            tf.reduce_prod(tf.shape(value)[1:-1]), tf.float32)
        squares = tf.math.squared_difference(value, trained)
        spatial = list(range(1, len(value.shape) - 1))
        if spatial:
            value = tf.reduce_mean(value, axis=spatial, keepdims=True)
            squares = tf.reduce_mean(squares, axis=spatial, keepdims=True)
        if len(value.shape) != 4:  # every layer's moments in one rank, to concatenate them in one op
            value, squares = (tf.reshape(v, [-1, 1, 1, norm.channels]) for v in (value, squares))
        return value, squares, positions

    def _positions(self, parts):
        """Per channel (flat order), the number of positions its layer's input has per sample."""
        if all(isinstance(p[2], int) for p in parts):
            return tf.constant(np.repeat([float(p[2]) for p in parts], [n.channels for n, _ in self.nodes])
                               .astype(np.float32))
        return tf.concat([tf.fill([norm.channels], tf.cast(p[2], tf.float32))
                          for (norm, _), p in zip(self.nodes, parts)], axis=0)

    def collect(self, y, taps):
        """Σ (x − m₀), Σ (x − m₀)² and the count over batch and positions, from the per-sample moments."""
        parts = [taps["moments"][norm.name] for norm, _ in self.nodes]
        flat = [-1, self.channels]
        means = tf.reshape(tf.concat([p[0] for p in parts], axis=-1), flat)  # per-sample channel means
        squares = tf.reshape(tf.concat([p[1] for p in parts], axis=-1), flat)
        positions = self._positions(parts)
        batch = tf.cast(tf.shape(means)[0], tf.float32)
        # Σ over positions of (x − m₀) = positions × (mean − m₀), summed over the batch.
        self.norm_sums.assign_add(positions * tf.reduce_sum(means - self._trained_mean, axis=0))
        self.norm_squares.assign_add(positions * tf.reduce_sum(squares, axis=0))
        self.norm_count.assign_add(batch * positions)
        if self._typicality_limits is None:  # configured without limits: no extra output
            return {}
        return {sig.TYPICALITY: self._typicality(means)}

    def _typicality(self, means):
        """Per sample: max over layers of the mean over channels of (channel mean − μ_ref)² / σ²_ref, divided by
        the layer's limit, divided by the combined limit (`layer_typicality`, `typicality_limits`).

        The constant divisors are folded into one weight per channel, and the per-layer sums are one
        SEGMENT_SUM over the channels (of the transposed [channels, batch] matrix).
        """
        per_layer, combined = self._typicality_limits
        channels = [norm.channels for norm, _ in self.nodes]
        divisor = (np.maximum(self._reference_var_np, VARIANCE_FLOOR) * np.repeat(channels, channels)
                   * np.repeat(np.asarray(per_layer, np.float64), channels) * float(combined))
        weighted = tf.math.squared_difference(means, self._reference_mean) * tf.constant(
            (1.0 / divisor).astype(np.float32))
        layer_of = tf.constant(np.repeat(np.arange(len(channels), dtype=np.int32), channels))
        scores = tf.math.segment_sum(tf.transpose(weighted), layer_of)  # [layers, batch]
        return tf.reduce_max(scores, axis=0)

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
