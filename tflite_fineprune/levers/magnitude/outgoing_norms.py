"""How much of each unit reaches the next layers: the L2 norm of its outgoing weights.

The magnitude pruning score of a unit is its mean |activation| times this
norm: a unit that is often active but whose output the next layer scales down
to almost nothing matters as little as one that is rarely active
(docs/personalization.md, "Magnitude pruning"). The consumer's BatchNormalization
scale γ/√(σ² + ε) is folded into its kernel first, since that is the weight the
unit's output really meets at inference.

Computed once at export from the frozen weights; the model carries the result
as a constant vector in mask order (zero for output units, which this score
never prunes).
"""

import numpy as np
from keras import layers

from ...metadata import ROLE_HIDDEN
from ...export.layer_registry import Role, UnitKind, rule_for


def _following_batchnorm(node, consumers, graph):
    """The channel-last BatchNormalization a weight layer's output goes through alone, or None."""
    users = consumers.get(node.outputs[0], [])
    if len(users) != 1 or not isinstance(users[0].layer, layers.BatchNormalization):
        return None
    bn = users[0].layer
    axis = bn.axis if isinstance(bn.axis, int) else bn.axis[-1]
    rank = len(graph.shapes[node.outputs[0]])
    return bn if axis % rank == rank - 1 else None


def batchnorm_scale(bn):
    """Per channel γ/√(σ² + ε) of a BatchNormalization layer, as numpy."""
    variance = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(variance)
    return gamma / np.sqrt(variance + bn.epsilon)


def _squared_norm_per_input(node, kind, scale):
    """Per input feature of a weight layer, Σ over kernel positions and outputs of (w · scale)²."""
    layer = node.layer
    if kind is UnitKind.SEPARABLE:
        # Input channel c reaches output o through its depthwise filters and their pointwise rows.
        depthwise = np.asarray(layer.depthwise_kernel, np.float64)
        d = depthwise.reshape(-1, depthwise.shape[-2], depthwise.shape[-1])  # positions, in, multiplier
        p = np.asarray(layer.pointwise_kernel, np.float64).reshape(d.shape[1], d.shape[2], -1) * scale
        composed = np.einsum("kcm,cmo->kco", d, p)
        return np.sum(composed * composed, axis=(0, 2))
    kernel = np.asarray(layer.kernel, np.float64)
    k = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])  # positions, in, out (depthwise: multiplier)
    if kind is UnitKind.DEPTHWISE:
        k = k * np.reshape(scale, (1, k.shape[1], k.shape[2])) if np.ndim(scale) else k * scale
    else:
        k = k * scale
    return np.sum(k * k, axis=(0, 2))


def outgoing_norms(graph, plan, layout):
    """Per unit in mask order (`layout`: the groups with offsets), its outgoing weight norm.

    Units read by no weight layer (e.g. feeding only pooling then the output)
    get 1, so that their score is their mean activation alone.
    """
    total = sum(g.units for g in layout)
    squared = np.zeros(total, np.float64)
    reached = np.zeros(total, bool)
    consumers = graph.consumers()
    segments_of = {w.name.split("/")[0]: w.in_segments for w in plan.weight_layers}
    for node in graph.nodes:
        if node.layer is None:
            continue
        rule = rule_for(node.layer)
        if rule.role is not Role.UNITS or node.name not in segments_of:
            continue
        bn = _following_batchnorm(node, consumers, graph)
        scale = batchnorm_scale(bn) if bn is not None else 1.0
        per_input = _squared_norm_per_input(node, rule.unit_kind, scale)
        start = 0
        for group, channels, repeat in segments_of[node.name]:
            piece = per_input[start:start + channels * repeat]
            start += channels * repeat
            if group is None:
                continue
            g = layout[group]
            # After Flatten, feature f reads channel f % channels (channels innermost).
            squared[g.offset:g.offset + g.units] += piece.reshape(-1, channels).sum(axis=0)
            reached[g.offset:g.offset + g.units] = True
    norms = np.where(reached, np.sqrt(squared), 1.0)
    for g in layout:
        if g.role != ROLE_HIDDEN:
            norms[g.offset:g.offset + g.units] = 0.0
    return norms.astype(np.float32)
