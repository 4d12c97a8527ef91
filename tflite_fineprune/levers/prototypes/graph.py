"""Classifier prototypes' export side (T3A; the formulas and the head's choice in export/prototypes.py).

The trained kernel stays a variable no signature assigns (a constant of the
file); the kernel in use is `head_kernel`, which adapt_classifier,
set_prototypes and reset assign. `collect` sums the confidently
pseudo-labelled, normalised features into `proto_sums`/`proto_counts`.
"""

import tensorflow as tf

from ... import signatures as sig
from . import LEVER
from ...export.prototypes import NORM_FLOOR, check_confidence, classifier_head
from ...export.levers.base import ExportLever, function


class ClassifierPrototypes(ExportLever):
    lever = LEVER

    @classmethod
    def configure(cls, graph, options, input_dtype):
        if not options.classifier_prototypes:
            return None
        return {"node": classifier_head(graph), "confidence": check_confidence(options.prototype_confidence)}

    @staticmethod
    def _head(config, graph):
        node = config["node"]
        return (node.name, int(graph.shapes[node.inputs[0]][-1]), config["confidence"])

    @classmethod
    def metadata_fields(cls, config, graph):
        return {"classifier_head": cls._head(config, graph)}

    @classmethod
    def fingerprint_part(cls, config, graph):
        return ["classifier_head", *cls._head(config, graph)]

    def __init__(self, module, parts, config):
        super().__init__(module, parts, config)
        self.node = config["node"]
        kernel = self.node.layer.kernel
        index = next(i for i, (variable, _) in enumerate(parts.frozen) if variable is kernel)
        self._trained_kernel = module.weights[index]
        value = parts.frozen[index][1]
        d, c = value.shape
        self.shape = (int(d), int(c))
        self._confidence = float(config["confidence"])
        self.head_kernel = self._variable("head_kernel", value)
        self.proto_sums = self._variable("proto_sums", tf.zeros([c, d]))
        self.proto_counts = self._variable("proto_counts", tf.zeros([c]))

    def mapping(self, mapping):
        kernel = self.node.layer.kernel
        mapping[id(kernel)] = (kernel, self.head_kernel)

    def before_layer(self, node, args, taps):
        if node is self.node:
            taps["features"] = args[0]

    def collect(self, y, taps):
        """S_c += Σ_i w_ic f_i/‖f_i‖ and N_c += Σ_i w_ic, w_ic = p_ic for samples whose top posterior ≥ τ."""
        posteriors = self.module.posteriors(y)
        f = tf.reshape(taps["features"], [-1, self.shape[0]])
        length = tf.sqrt(tf.reduce_sum(f * f, axis=1, keepdims=True))
        f_hat = f / tf.maximum(length, NORM_FLOOR)
        confident = tf.cast(tf.reduce_max(posteriors, axis=1, keepdims=True) >= self._confidence, tf.float32)
        weights = posteriors * confident
        self.proto_sums.assign_add(tf.matmul(weights, f_hat, transpose_a=True))
        self.proto_counts.assign_add(tf.reduce_sum(weights, axis=0))

    def reset(self, zero_counts, restore):
        self.proto_sums.assign(tf.where(zero_counts, tf.zeros_like(self.proto_sums), self.proto_sums))
        self.proto_counts.assign(tf.where(zero_counts, tf.zeros_like(self.proto_counts), self.proto_counts))
        self.head_kernel.assign(tf.where(restore, tf.convert_to_tensor(self._trained_kernel), self.head_kernel))

    def state(self):
        return {sig.PROTO_SUMS: tf.reshape(self.proto_sums.read_value(), [-1]),
                sig.PROTO_COUNTS: self.proto_counts.read_value(),
                sig.HEAD_KERNEL: tf.reshape(self.head_kernel.read_value(), [-1])}

    def _adapt_classifier(self, strength):
        """W' = (1 − β)·W + β·P, P_c = ‖W_c‖ · normalised(ŵ_c + S_c) (export/prototypes.py); bias kept."""
        beta = tf.clip_by_value(strength, 0.0, 1.0)
        trained = tf.convert_to_tensor(self._trained_kernel)
        norms = tf.sqrt(tf.reduce_sum(trained * trained, axis=0))  # [C]
        supports = tf.transpose(trained / tf.maximum(norms, NORM_FLOOR)) + self.proto_sums  # [C, D]
        lengths = tf.sqrt(tf.reduce_sum(supports * supports, axis=1, keepdims=True))
        prototypes = tf.transpose(supports / tf.maximum(lengths, NORM_FLOOR)) * norms  # [D, C]
        self.head_kernel.assign((1.0 - beta) * trained + beta * prototypes)
        return {sig.HEAD_KERNEL: tf.reshape(self.head_kernel.read_value(), [-1])}

    def _set_prototypes(self, proto_sums, proto_counts, head_kernel):
        self.proto_sums.assign(tf.reshape(proto_sums, self.proto_sums.shape))
        self.proto_counts.assign(proto_counts)
        self.head_kernel.assign(tf.reshape(head_kernel, self.head_kernel.shape))
        return {sig.PROTO_COUNTS: self.proto_counts.read_value()}

    def signatures(self, specs):
        d, c = self.shape
        vector = lambda n: tf.TensorSpec([n], tf.float32)  # noqa: E731
        return [(sig.ADAPT_CLASSIFIER, function(self._adapt_classifier, specs.scalar)),
                (sig.SET_PROTOTYPES, function(self._set_prototypes, vector(c * d), vector(c), vector(d * c)))]


GRAPH = ClassifierPrototypes
