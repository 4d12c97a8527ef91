"""The `tf.Module` whose signatures become the exported on-device routine.

The module holds the frozen weights and the core state (masks, activity
counters, samples) and runs the masked forward pass; each lever the export
carries (its graph side, levers/<name>/graph.py) adds its variables, hooks and signatures.
"""

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .. import signatures as sig
from ..metadata import OUTPUT_PROBABILITIES, ROLE_OUTPUT
from .activity import batch_sums, count_active
from .keras_compat import takes_training_argument
from .levers import EXPORT_LEVERS
from .levers.base import function


@dataclasses.dataclass(frozen=True)
class ModelParts:
    """What the module is built from.

    Attributes
    ----------
    graph : KerasGraph
        The flattened Keras model.
    plan : Plan
        Where the masks go.
    layout : sequence of UnitGroup
        Offsets of each planned group in the flat mask vector (plan.groups' order).
    frozen : list of (keras.Variable, np.ndarray)
        Every model variable with its value, substituted as a constant.
    input_shape, input_dtype : the input spec (batch axis first).
    num_classes : int
    """

    graph: Any
    plan: Any
    layout: tuple
    frozen: list
    input_shape: tuple
    input_dtype: str = "float32"
    num_classes: int = 0


@dataclasses.dataclass(frozen=True)
class Specs:
    """The TensorSpecs the levers' signatures share."""

    scalar: tf.TensorSpec
    flag: tf.TensorSpec
    vector: tf.TensorSpec  # one float per unit


class FinePruneModule(tf.Module):
    """Masked forward pass, activity counters and the levers' routines, with frozen weights.

    `levers` maps the name of each lever the export carries to its
    configuration (`export.levers.configure`).
    """

    def __init__(self, parts, levers):
        super().__init__(name="fineprune")
        self._graph = parts.graph
        self._plan = parts.plan
        self._layout = list(parts.layout)
        # Plain tf.Variables that no signature assigns: saved in the checkpoint (fast) rather
        # than the graph, and folded into constants by the converter.
        self._keras_variables = [v for v, _ in parts.frozen]
        self.weights = [tf.Variable(value, trainable=False, name="weight") for _, value in parts.frozen]
        self.output_kind = parts.plan.output_kind
        self.num_classes = int(parts.num_classes)
        self._mask_points = parts.plan.mask_points
        self.units = sum(g.units for g in self._layout)
        self.masks = tf.Variable(tf.ones([self.units], tf.float32), name="masks")
        self.counts = tf.Variable(tf.zeros([self.units], tf.float32), name="counts")
        self.samples = tf.Variable(tf.zeros([1], tf.float32), name="samples")
        self._levers = [cls(self, parts, levers[cls.lever.name]) for cls in EXPORT_LEVERS
                        if cls.lever.name in levers and cls.enabled(self._layout)]
        x_spec = tf.TensorSpec([None, *parts.input_shape[1:]], tf.as_dtype(parts.input_dtype), name=sig.INPUT)
        specs = Specs(scalar=tf.TensorSpec([], tf.float32), flag=tf.TensorSpec([], tf.int32),
                      vector=tf.TensorSpec([self.units], tf.float32))
        core = [
            (sig.INFER, function(self._infer, x_spec)),
            (sig.COLLECT, function(self._collect, x_spec)),
            (sig.RESET, function(self._reset, specs.flag, specs.flag)),
            (sig.GET_STATE, function(self._get_state, specs.flag)),
            (sig.SET_STATE, function(self._set_state, specs.vector, specs.vector, tf.TensorSpec([1], tf.float32))),
        ]
        added = core + [pair for lever in self._levers for pair in lever.signatures(specs)]
        # The required signatures first, in signatures.REQUIRED's order, then the levers' in theirs.
        rank = {name: i for i, name in enumerate(sig.REQUIRED)}
        ordered = sorted(enumerate(added), key=lambda item: (rank.get(item[1][0], len(rank)), item[0]))
        self.functions = {name: fn for _, (name, fn) in ordered}

    # Attributes the levers read (properties: tf.Module tracks what is assigned, and the saved graph stays as before).
    layout = property(lambda self: self._layout)
    keras_variables = property(lambda self: self._keras_variables)

    def concrete_functions(self):
        return {name: fn.get_concrete_function() for name, fn in self.functions.items()}

    # -- forward -----------------------------------------------------------

    def _forward(self, x, taps=None):
        """Masked model output and the masked tensor of every group; levers record what they need in `taps`."""
        masked = {}
        taps = {} if taps is None else taps
        mapping = self._state_mapping()

        def call(node, args, kwargs):
            layer = node.layer
            for lever in self._levers:
                lever.before_layer(node, args, taps)
            if takes_training_argument(layer):
                kwargs["training"] = False
            outputs = keras.tree.flatten(layer(*args, **kwargs))
            for i, tid in enumerate(node.outputs):
                index = self._mask_points.get(tid)
                if index is not None:
                    outputs[i] = self._apply_mask(outputs[i], index)
                    masked[index] = outputs[i]
            return outputs

        with keras.StatelessScope(state_mapping=mapping):
            (y,) = self._graph.run([x], call)
        for lever in self._levers:
            y = lever.output(y)
        return y, masked

    def _state_mapping(self):
        """Keras variable → value: the frozen weights, and what the levers substitute (BN statistics, kernel)."""
        mapping = dict(zip(map(id, self._keras_variables), zip(self._keras_variables, self.weights)))
        for lever in self._levers:
            lever.mapping(mapping)
        return list(mapping.values())

    def posteriors(self, y):
        """Class probabilities of a model output."""
        return y if self.output_kind == OUTPUT_PROBABILITIES else tf.nn.softmax(y, axis=-1)

    def _apply_mask(self, value, index):
        group = self._layout[index]
        mask = self.masks[group.offset:group.offset + group.units]
        for lever in self._levers:
            result = lever.masked(value, mask, group)
            if result is not None:
                return result
        return value * mask

    def _infer(self, x):
        y, _ = self._forward(x)
        return {sig.OUTPUT: y}

    def _collect(self, x):
        taps = {}
        y, masked = self._forward(x, taps)
        deltas = []
        for index, group in enumerate(self._layout):
            value = masked[index]
            # The levers see each group where they always did (output: after its count; hidden: before),
            # so that the graph, and the file, stay the same.
            if group.role == ROLE_OUTPUT:
                deltas.append(tf.reduce_sum(tf.one_hot(tf.argmax(value, axis=-1), group.units), axis=0))
            for lever in self._levers:
                lever.observe_group(group, value)
            if group.role != ROLE_OUTPUT:
                # plan.groups and the layout share their order
                deltas.append(count_active(value, group.units, self._plan.groups[index].above_minus_one))
        self.counts.assign_add(batch_sums(deltas))
        extra = {}
        for lever in self._levers:
            extra.update(lever.collect(y, taps) or {})  # a lever may add per-sample outputs (typicality)
        self.samples.assign_add(tf.cast(tf.shape(x)[:1], tf.float32))
        return {sig.OUTPUT: y, **extra}

    # -- routine -----------------------------------------------------------

    def activity(self):
        return self.counts / tf.maximum(self.samples, 1.0)

    def commit_masks(self, new_masks):
        """Set the masks a pruning step chose (the levers see them first: mean compensation freezes means)."""
        for lever in self._levers:
            lever.before_commit(new_masks)
        self.masks.assign(new_masks)
        return {sig.MASKS: self.masks.read_value()}

    def _reset(self, clear_counts, clear_masks):
        zero_counts = tf.not_equal(clear_counts, 0)
        self.counts.assign(tf.where(zero_counts, tf.zeros_like(self.counts), self.counts))
        self.samples.assign(tf.where(zero_counts, tf.zeros_like(self.samples), self.samples))
        restore = tf.not_equal(clear_masks, 0)
        self.masks.assign(tf.where(restore, tf.ones_like(self.masks), self.masks))
        for lever in self._levers:
            lever.reset(zero_counts, restore)
        return {sig.SAMPLES: self.samples.read_value()}

    def _get_state(self, token):
        # `token` only exists because Java's runSignature rejects input-less signatures.
        touch = tf.cast(token * 0, tf.float32)
        state = {sig.MASKS: self.masks + touch, sig.COUNTS: self.counts.read_value(),
                 sig.SAMPLES: self.samples.read_value()}
        for lever in self._levers:
            state.update(lever.state())
        return state

    def _set_state(self, masks, counts, samples):
        self.masks.assign(masks)
        self.counts.assign(counts)
        self.samples.assign(samples)
        return {sig.MASKS: self.masks.read_value()}


def freeze_variables(model):
    """Every variable of the model (nested ones included) with its current value."""
    return [(v, np.asarray(keras.ops.convert_to_numpy(v.value))) for v in model.variables]
