"""The `tf.Module` whose signatures become the exported on-device routine."""

import keras
import numpy as np
import tensorflow as tf

from .. import signatures as sig
from ..metadata import ROLE_HIDDEN, ROLE_OUTPUT
from .activity import count_active
from .keras_compat import takes_training_argument
from .normalization import VARIANCE_FLOOR
from .planner import OUTPUT_PROBABILITIES
from .prototypes import NORM_FLOOR
from .pruning_policy import POLICIES, output_by_frequency

EXCLUDED_LOGIT = -1e9  # a pruned class's logit: far below any real logit
PRIOR_FLOOR = 1e-6  # smallest class prior EM may estimate (keeps log weights finite)


def _function(method, *specs):
    # No Python control flow depends on tensors here, so autograph only costs tracing time.
    return tf.function(method, input_signature=list(specs), autograph=False)


class FinePruneModule(tf.Module):
    """Masked forward pass, activity counters and pruning, with frozen weights.

    Parameters
    ----------
    graph : Graph
        The flattened Keras model.
    plan : Plan
        Where the masks go.
    layout : sequence of UnitGroup
        Offsets of each planned group in the flat mask vector.
    frozen : list of (keras.Variable, np.ndarray)
        Every model variable with its value, substituted as a constant.
    input_shape, input_dtype, policy : the input spec and the pruning policy name.
    mean_compensation : bool
        A pruned hidden unit outputs its mean activation over the observed
        data (frozen when it is pruned) instead of 0: still a constant, so it
        folds into the next layer's bias, but the next layer keeps its
        expected input.
    num_classes, prior_correction :
        With prior correction the output is reweighted by per-class weights
        w = user prior / training prior (uniform), estimated label-free by EM
        (Saerens et al. 2002): `collect` sums the reweighted class posteriors,
        `update_priors` turns them into the next weights.
    normalization : dict, optional
        Relative AdaBN (export/normalization.py): `nodes` (NormLayer, node) pairs,
        `trained` and `reference` (mean, variance) vectors over their channels.
    prototypes : dict, optional
        Classifier prototypes (export/prototypes.py): `node` (the final Dense
        layer's graph node) and `confidence` (τ).
    """

    def __init__(self, graph, plan, layout, frozen, input_shape, output_kind, policy, input_dtype="float32",
                 mean_compensation=False, num_classes=0, prior_correction=False, normalization=None,
                 prototypes=None):
        super().__init__(name="fineprune")
        self._graph = graph
        self._plan = plan
        self._layout = list(layout)
        # Plain tf.Variables that no signature assigns: saved in the checkpoint (fast) rather
        # than the graph, and folded into constants by the converter.
        self._keras_variables = [v for v, _ in frozen]
        self.weights = [tf.Variable(value, trainable=False, name="weight") for _, value in frozen]
        self._output_kind = output_kind
        self._policy = POLICIES[policy]
        self._mask_points = plan.mask_points
        units = sum(g.units for g in self._layout)
        self.masks = tf.Variable(tf.ones([units], tf.float32), name="masks")
        self.counts = tf.Variable(tf.zeros([units], tf.float32), name="counts")
        self.samples = tf.Variable(tf.zeros([1], tf.float32), name="samples")
        self._compensate = bool(mean_compensation)
        if self._compensate:
            self.sums = tf.Variable(tf.zeros([units], tf.float32), name="sums")
            self.fill = tf.Variable(tf.zeros([units], tf.float32), name="fill")
        self._priors = bool(prior_correction)
        self._num_classes = int(num_classes)
        if self._priors:
            self.log_weights = tf.Variable(tf.zeros([num_classes], tf.float32), name="log_weights")
            self.soft_counts = tf.Variable(tf.zeros([num_classes], tf.float32), name="soft_counts")
        self._init_normalization(normalization)
        self._init_prototypes(prototypes, frozen)
        x_spec = tf.TensorSpec([None, *input_shape[1:]], tf.as_dtype(input_dtype), name=sig.INPUT)
        scalar = tf.TensorSpec([], tf.float32)
        flag = tf.TensorSpec([], tf.int32)
        vector = tf.TensorSpec([units], tf.float32)
        self.functions = {
            sig.INFER: _function(self._infer, x_spec),
            sig.COLLECT: _function(self._collect, x_spec),
            sig.PRUNE: _function(self._prune, scalar),
            sig.RESET: _function(self._reset, flag, flag),
            sig.GET_STATE: _function(self._get_state, flag),
            sig.SET_STATE: _function(self._set_state, vector, vector, tf.TensorSpec([1], tf.float32)),
        }
        if self._compensate:
            self.functions[sig.SET_COMPENSATION] = _function(self._set_compensation, vector, vector)
        if self._priors:
            classes = tf.TensorSpec([num_classes], tf.float32)
            self.functions[sig.UPDATE_PRIORS] = _function(self._update_priors, flag)
            self.functions[sig.SET_PRIORS] = _function(self._set_priors, classes, classes)
        if any(g.role == ROLE_OUTPUT for g in self._layout):
            self.functions[sig.PRUNE_OUTPUTS] = _function(self._prune_outputs, scalar)
        self.functions[sig.PRUNE_DORMANT] = _function(self._prune_dormant, scalar)
        if self._norm_nodes:
            channels = tf.TensorSpec([self._norm_channels], tf.float32)
            self.functions[sig.ADAPT_NORMALIZATION] = _function(self._adapt_normalization, scalar)
            self.functions[sig.SET_NORMALIZATION] = _function(self._set_normalization, *[channels] * 5)
        if self._head is not None:
            d, c = self._head_shape
            self.functions[sig.ADAPT_CLASSIFIER] = _function(self._adapt_classifier, scalar)
            self.functions[sig.SET_PROTOTYPES] = _function(
                self._set_prototypes, tf.TensorSpec([c * d], tf.float32), tf.TensorSpec([c], tf.float32),
                tf.TensorSpec([d * c], tf.float32))

    def _init_prototypes(self, prototypes, frozen):
        self._head = prototypes["node"] if prototypes else None
        if self._head is None:
            return
        layer = self._head.layer
        index = next(i for i, (v, _) in enumerate(frozen) if v is layer.kernel)
        # The trained kernel stays a variable no signature assigns (a constant of the file); the kernel in
        # use is head_kernel, which adapt_classifier, set_prototypes and reset assign.
        self._trained_kernel = self.weights[index]
        d, c = frozen[index][1].shape
        self._head_shape = (int(d), int(c))
        self._confidence = float(prototypes["confidence"])
        self.head_kernel = tf.Variable(frozen[index][1], name="head_kernel")
        self.proto_sums = tf.Variable(tf.zeros([c, d]), name="proto_sums")
        self.proto_counts = tf.Variable(tf.zeros([c]), name="proto_counts")

    def _init_normalization(self, normalization):
        self._norm_nodes = list(normalization["nodes"]) if normalization else []
        self._norm_channels = sum(norm.channels for norm, _ in self._norm_nodes)
        if not self._norm_nodes:
            return
        b = self._norm_channels
        as_f32 = lambda v: tf.constant(np.asarray(v, np.float32))  # noqa: E731
        self._trained_mean, self._trained_var = map(as_f32, normalization["trained"])
        self._reference_mean, self._reference_var = map(as_f32, normalization["reference"])
        # The statistics infer/collect use (start as the trained ones), and the user's moments of each
        # BN input, accumulated relative to the trained mean so that E[x²] - E[x]² keeps its precision.
        self.norm_mean = tf.Variable(self._trained_mean, name="norm_mean")
        self.norm_var = tf.Variable(self._trained_var, name="norm_var")
        self.norm_sums = tf.Variable(tf.zeros([b]), name="norm_sums")
        self.norm_squares = tf.Variable(tf.zeros([b]), name="norm_squares")
        self.norm_count = tf.Variable(tf.zeros([b]), name="norm_count")

    def concrete_functions(self):
        return {name: fn.get_concrete_function() for name, fn in self.functions.items()}

    # -- forward -----------------------------------------------------------

    def _group_mask(self, index):
        group = self._layout[index]
        return self.masks[group.offset:group.offset + group.units]

    def _forward(self, x, moments=None, taps=None):
        """Masked model output and the masked tensor of every group.

        BN input moments go into `moments`; the classifier head's input (the
        penultimate features) into `taps["features"]`.
        """
        masked = {}
        taps = {} if taps is None else taps
        mapping = self._state_mapping()
        moments = {} if moments is None else moments
        norm_of = {id(node): norm for norm, node in self._norm_nodes}

        def call(node, args, kwargs):
            layer = node.layer
            if id(node) in norm_of:
                moments[norm_of[id(node)].name] = self._input_moments(args[0], norm_of[id(node)])
            if node is self._head:
                taps["features"] = args[0]
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
        if self._priors:
            y = self._reweight(y)
        return y, masked

    def _state_mapping(self):
        """Keras variable → value; adaptable BN layers read their statistics from norm_mean/norm_var."""
        mapping = dict(zip(map(id, self._keras_variables), zip(self._keras_variables, self.weights)))
        for norm, node in self._norm_nodes:
            part = slice(norm.offset, norm.offset + norm.channels)
            mapping[id(node.layer.moving_mean)] = (node.layer.moving_mean, self.norm_mean[part])
            mapping[id(node.layer.moving_variance)] = (node.layer.moving_variance, self.norm_var[part])
        if self._head is not None:
            kernel = self._head.layer.kernel
            mapping[id(kernel)] = (kernel, self.head_kernel)
        return list(mapping.values())

    def _input_moments(self, value, norm):
        """Per-channel sum, sum of squares (both relative to the trained mean) and count of a BN input."""
        flat = tf.reshape(value, [-1, norm.channels])
        centered = flat - self._trained_mean[norm.offset:norm.offset + norm.channels]
        count = tf.cast(tf.shape(flat)[0], tf.float32) * tf.ones([norm.channels])
        return tf.reduce_sum(centered, axis=0), tf.reduce_sum(centered * centered, axis=0), count

    def _reweight(self, y):
        if self._output_kind == OUTPUT_PROBABILITIES:
            weighted = y * tf.exp(self.log_weights)
            return weighted / tf.reduce_sum(weighted, axis=-1, keepdims=True)
        return y + self.log_weights

    def _posteriors(self, y):
        return y if self._output_kind == OUTPUT_PROBABILITIES else tf.nn.softmax(y, axis=-1)

    def _apply_mask(self, value, index):
        mask = self._group_mask(index)
        if self._layout[index].role != ROLE_OUTPUT:
            if self._compensate:
                group = self._layout[index]
                return value * mask + self.fill[group.offset:group.offset + group.units]
            return value * mask
        if self._output_kind == OUTPUT_PROBABILITIES:
            kept = value * mask
            return kept / tf.reduce_sum(kept, axis=-1, keepdims=True)
        # Multiplying a logit by 0 does not exclude its class; push it far down instead.
        return value * mask + (1.0 - mask) * EXCLUDED_LOGIT

    def _infer(self, x):
        y, _ = self._forward(x)
        return {sig.OUTPUT: y}

    def _collect(self, x):
        moments, taps = {}, {}
        y, masked = self._forward(x, moments, taps)
        deltas, sums = [], []
        for index, group in enumerate(self._layout):
            value = masked[index]
            if group.role == ROLE_OUTPUT:
                deltas.append(tf.reduce_sum(tf.one_hot(tf.argmax(value, axis=-1), group.units), axis=0))
                sums.append(tf.zeros([group.units]))
                continue
            spatial = list(range(1, len(value.shape) - 1))
            if self._compensate:
                mean = tf.reduce_mean(value, axis=spatial, keepdims=True) if spatial else value
                sums.append(tf.reduce_sum(tf.reshape(mean, [-1, group.units]), axis=0))
            # plan.groups and the layout share their order
            deltas.append(count_active(value, group.units, self._plan.groups[index].non_negative))
        self.counts.assign_add(tf.concat(deltas, axis=0))
        if self._compensate:
            self.sums.assign_add(tf.concat(sums, axis=0))
        if self._priors:
            self.soft_counts.assign_add(tf.reduce_sum(self._posteriors(y), axis=0))
        if self._norm_nodes:
            parts = [moments[norm.name] for norm, _ in self._norm_nodes]
            self.norm_sums.assign_add(tf.concat([p[0] for p in parts], axis=0))
            self.norm_squares.assign_add(tf.concat([p[1] for p in parts], axis=0))
            self.norm_count.assign_add(tf.concat([p[2] for p in parts], axis=0))
        if self._head is not None:
            self._collect_supports(taps["features"], self._posteriors(y))
        self.samples.assign_add(tf.cast(tf.shape(x)[:1], tf.float32))
        return {sig.OUTPUT: y}

    def _collect_supports(self, features, posteriors):
        """S_c += Σ_i w_ic f_i/‖f_i‖ and N_c += Σ_i w_ic, w_ic = p_ic for samples whose top posterior ≥ τ."""
        f = tf.reshape(features, [-1, self._head_shape[0]])
        length = tf.sqrt(tf.reduce_sum(f * f, axis=1, keepdims=True))
        f_hat = f / tf.maximum(length, NORM_FLOOR)
        confident = tf.cast(tf.reduce_max(posteriors, axis=1, keepdims=True) >= self._confidence, tf.float32)
        weights = posteriors * confident
        self.proto_sums.assign_add(tf.matmul(weights, f_hat, transpose_a=True))
        self.proto_counts.assign_add(tf.reduce_sum(weights, axis=0))

    # -- routine -----------------------------------------------------------

    def _activity(self):
        return self.counts / tf.maximum(self.samples, 1.0)

    def _prune(self, sparsity):
        sparsity = tf.clip_by_value(sparsity, 0.0, 0.999999)
        return self._commit_masks(self._policy(self._activity(), self.masks, sparsity, self._layout))

    def _commit_masks(self, new_masks):
        """Set the masks a pruning step chose; with mean compensation, newly pruned units freeze their mean."""
        if self._compensate:
            newly = tf.logical_and(new_masks < 0.5, self.masks > 0.5)
            mean = self.sums / tf.maximum(self.samples, 1.0)
            self.fill.assign(tf.where(newly, mean, self.fill * (1.0 - new_masks)))  # earlier ones keep theirs
        self.masks.assign(new_masks)
        return {sig.MASKS: self.masks.read_value()}

    def _prune_dormant(self, threshold):
        """Prune every hidden unit whose activity is below `threshold`; each layer keeps its most active unit.

        The paper's criterion taken literally: how much is pruned follows the
        data (an over-parameterized layer loses many units, a compact one none).
        """
        activity = self._activity()
        pieces = []
        for group in self._layout:
            part = slice(group.offset, group.offset + group.units)
            m, a = self.masks[part], activity[part]
            if group.role != ROLE_HIDDEN:
                pieces.append(m)
                continue
            keep = tf.cast(a >= threshold, tf.float32) * m
            best = tf.one_hot(tf.argmax(tf.where(m > 0.5, a, tf.fill(tf.shape(a), -1.0))), group.units)
            pieces.append(tf.where(tf.reduce_sum(keep) > 0.5, keep, best))
        return self._commit_masks(tf.concat(pieces, axis=0))

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

    def _prune_outputs(self, min_fraction):
        group = next(g for g in self._layout if g.role == ROLE_OUTPUT)
        self.masks.assign(output_by_frequency(self._activity(), self.masks, min_fraction, group))
        return {sig.MASKS: self.masks.read_value()}

    def _reset(self, clear_counts, clear_masks):
        zero_counts = tf.not_equal(clear_counts, 0)
        self.counts.assign(tf.where(zero_counts, tf.zeros_like(self.counts), self.counts))
        self.samples.assign(tf.where(zero_counts, tf.zeros_like(self.samples), self.samples))
        restore = tf.not_equal(clear_masks, 0)
        self.masks.assign(tf.where(restore, tf.ones_like(self.masks), self.masks))
        if self._compensate:
            self.sums.assign(tf.where(zero_counts, tf.zeros_like(self.sums), self.sums))
            self.fill.assign(tf.where(restore, tf.zeros_like(self.fill), self.fill))
        if self._priors:
            self.soft_counts.assign(tf.where(zero_counts, tf.zeros_like(self.soft_counts), self.soft_counts))
            self.log_weights.assign(tf.where(restore, tf.zeros_like(self.log_weights), self.log_weights))
        if self._norm_nodes:
            for variable in (self.norm_sums, self.norm_squares, self.norm_count):
                variable.assign(tf.where(zero_counts, tf.zeros_like(variable), variable))
            self.norm_mean.assign(tf.where(restore, self._trained_mean, self.norm_mean))
            self.norm_var.assign(tf.where(restore, self._trained_var, self.norm_var))
        if self._head is not None:
            self.proto_sums.assign(tf.where(zero_counts, tf.zeros_like(self.proto_sums), self.proto_sums))
            self.proto_counts.assign(tf.where(zero_counts, tf.zeros_like(self.proto_counts), self.proto_counts))
            self.head_kernel.assign(tf.where(restore, tf.convert_to_tensor(self._trained_kernel), self.head_kernel))
        return {sig.SAMPLES: self.samples.read_value()}

    def _get_state(self, token):
        # `token` only exists because Java's runSignature rejects input-less signatures.
        touch = tf.cast(token * 0, tf.float32)
        state = {sig.MASKS: self.masks + touch, sig.COUNTS: self.counts.read_value(),
                 sig.SAMPLES: self.samples.read_value()}
        if self._compensate:
            state[sig.SUMS] = self.sums.read_value()
            state[sig.FILL] = self.fill.read_value()
        if self._priors:
            state[sig.LOG_WEIGHTS] = self.log_weights.read_value()
            state[sig.SOFT_COUNTS] = self.soft_counts.read_value()
        if self._norm_nodes:
            state.update({sig.NORM_SUMS: self.norm_sums.read_value(), sig.NORM_SQUARES: self.norm_squares.read_value(),
                          sig.NORM_COUNT: self.norm_count.read_value(), sig.NORM_MEAN: self.norm_mean.read_value(),
                          sig.NORM_VAR: self.norm_var.read_value()})
        if self._head is not None:
            state.update({sig.PROTO_SUMS: tf.reshape(self.proto_sums.read_value(), [-1]),
                          sig.PROTO_COUNTS: self.proto_counts.read_value(),
                          sig.HEAD_KERNEL: tf.reshape(self.head_kernel.read_value(), [-1])})
        return state

    def _set_state(self, masks, counts, samples):
        self.masks.assign(masks)
        self.counts.assign(counts)
        self.samples.assign(samples)
        return {sig.MASKS: self.masks.read_value()}

    def _set_compensation(self, sums, fill):
        self.sums.assign(sums)
        self.fill.assign(fill * (1.0 - self.masks))  # kept units never carry a fill value
        return {sig.FILL: self.fill.read_value()}

    def _update_priors(self, token):
        """One EM step: the class posteriors summed since the last step become the new prior."""
        total = tf.reduce_sum(self.soft_counts) + tf.cast(token * 0, tf.float32)
        prior = self.soft_counts / tf.maximum(total, 1e-12)
        updated = tf.math.log(tf.maximum(prior, PRIOR_FLOOR) * float(self._num_classes))
        # Without observed samples keep the current weights.
        self.log_weights.assign(tf.where(total > 0, updated, self.log_weights))
        self.soft_counts.assign(tf.zeros_like(self.soft_counts))
        return {sig.LOG_WEIGHTS: self.log_weights.read_value()}

    def _set_priors(self, log_weights, soft_counts):
        self.log_weights.assign(log_weights)
        self.soft_counts.assign(soft_counts)
        return {sig.LOG_WEIGHTS: self.log_weights.read_value()}


def freeze_variables(model):
    """Every variable of the model (nested ones included) with its current value."""
    return [(v, np.asarray(keras.ops.convert_to_numpy(v.value))) for v in model.variables]
