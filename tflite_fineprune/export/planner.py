"""Decide where the masks go: unit groups, exclusions, and the weight/MAC table.

A unit group starts at a UNITS layer and ends after the BatchNormalization and
activation layers that follow it one-to-one (the "chain"); the mask multiplies
the chain's last tensor. A group is excluded when its masked tensor reaches an
Add/Multiply merge or a channel-mixing op, because zeroing it there would not
remove the unit.

With `couple_depthwise`, a chain whose only consumer is a depthwise
convolution (depth multiplier 1) continues through it: unit c of the group is
channel c of the convolution *and* of the depthwise layer after it (an
inverted-residual block's expansion and its depthwise filter), masked once,
after the depthwise chain. Pruning it removes both, which is what removing
either leaves behind anyway, and the mask and the activity count cost one pass
over one tensor instead of two (docs/performance.md).
"""

import dataclasses
import math

from keras import layers

from ..metadata import OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from ..errors import FinePruneError, ModelError
from ..metadata import ROLE_HIDDEN, ROLE_OUTPUT, WeightLayer
from .layer_registry import Role, UnitKind, activation_name, is_mixing, rule_for



@dataclasses.dataclass
class PlannedGroup:
    name: str
    layer_class: str
    units: int
    positions: int
    role: str
    unit_tensor: int
    chain: list  # the nodes after the first unit layer, up to the masked tensor
    members: tuple = ()  # names of the unit layers whose channels are the units (coupled: two)
    non_negative: bool = False  # the masked tensor is >= 0 (ends in ReLU/ReLU6): magnitude needs no |x|
    above_minus_one: bool = False  # the masked tensor is > -1 (ReLU, hard-swish, ...): a cheaper activity count

    def __post_init__(self):
        if not self.members:
            self.members = (self.name,)


@dataclasses.dataclass
class Plan:
    groups: list
    excluded: list
    weight_layers: list
    output_kind: str
    total_macs: int

    @property
    def mask_points(self):
        return {g.unit_tensor: i for i, g in enumerate(self.groups)}


def _prod(values):
    return int(math.prod(int(v) for v in values))


def _static(shape, what):
    if any(d is None for d in shape[1:]):
        raise ModelError(
            f"{what} has shape {shape} with unknown non-batch dimensions; "
            "export with a fixed input_shape=(H, W, C)"
        )
    return shape


def _follow_chain(start_node, graph, consumers, rules, outputs):
    """Nodes of the BN/activation chain after a UNITS node, and the masked tensor."""
    chain = []
    tensor = start_node.outputs[0]
    while True:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor in outputs:
            break
        nxt = users[0]
        if nxt.layer is None:
            break
        rule = rules[id(nxt)]
        if rule.role not in (Role.CHAIN, Role.MIXING):
            break
        if is_mixing(nxt.layer, rule) and nxt.outputs[0] not in outputs:
            break
        if isinstance(nxt.layer, layers.BatchNormalization):
            axis = nxt.layer.axis if isinstance(nxt.layer.axis, int) else nxt.layer.axis[-1]
            rank = len(graph.shapes[tensor])
            if axis % rank != rank - 1:
                break
        chain.append(nxt)
        tensor = nxt.outputs[0]
    return chain, tensor


def _exclusion_reason(tensor, consumers, rules, outputs, graph):
    """Why masking `tensor` would not remove its units, or None when it would."""
    stack, seen = [tensor], set()
    while stack:
        tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        if tid in outputs and tid != tensor:
            return "reaches the model output through reshaping or pooling"
        for node in consumers.get(tid, []):
            if node.layer is None:
                stack.extend(node.outputs)
                continue
            rule = rules[id(node)]
            if rule.role is Role.MERGE or (rule.role is Role.ELEMENTWISE_OP and len(node.inputs) > 1):
                return f"feeds {type(node.layer).__name__} {node.name!r}, which merges it with another path"
            if is_mixing(node.layer, rule):
                return f"feeds channel-mixing {node.name!r}"
            if rule.role is Role.UNITS:
                continue
            if rule.role is Role.CONCAT and _concat_axis(node, graph) != len(graph.shapes[tid]) - 1:
                return f"feeds {node.name!r}, which concatenates along a non-channel axis"
            stack.extend(node.outputs)
    return None


def _concat_axis(node, graph):
    rank = len(graph.shapes[node.outputs[0]])
    return node.layer.axis % rank


def _coupled_depthwise(tensor, graph, consumers, rules, outputs):
    """(nodes up to it, depthwise node, its chain, its chain's end) when `tensor` feeds only a
    depth-multiplier-1 depthwise layer, directly or through channel-wise layers (e.g. ZeroPadding2D)."""
    between = []
    while True:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor in outputs or users[0].layer is None:
            return None
        node = users[0]
        if rules[id(node)].role is not Role.CHANNELWISE:
            break
        between.append(node)
        tensor = node.outputs[0]
    if rules[id(node)].unit_kind is not UnitKind.DEPTHWISE or getattr(node.layer, "depth_multiplier", 1) != 1:
        return None
    chain, end = _follow_chain(node, graph, consumers, rules, outputs)
    return between, node, chain, end


def _ends_non_negative(layer):
    """Whether the layer's output is >= 0 whatever its input: a plain ReLU or ReLU6."""
    if isinstance(layer, layers.ReLU):
        return float(layer.negative_slope) == 0.0 and float(layer.threshold) >= 0.0
    return activation_name(layer) in ("relu", "relu6")


# Activations whose output is > -1 whatever their input (hard-swish's minimum is -0.375, swish's about -0.28,
# GELU's about -0.17, mish's about -0.31); not ELU or tanh, which reach -1 in float32.
ABOVE_MINUS_ONE = ("relu", "relu6", "hard_swish", "hard_silu", "swish", "silu", "gelu", "mish", "sigmoid",
                   "hard_sigmoid", "softplus")


def _ends_above_minus_one(layer):
    """Whether the layer's output is > -1 whatever its input: there CEIL(min(x, 1)) is the exact positivity test."""
    if isinstance(layer, layers.ReLU):  # a leaky ReLU is a ReLU layer too (activation_name says "relu")
        return _ends_non_negative(layer)
    return activation_name(layer) in ABOVE_MINUS_ONE


def plan_model(graph, prune_outputs=False, couple_depthwise=False):
    """Return the `Plan` for a flattened graph.

    `prune_outputs`: True requires prunable output classes, False keeps them
    fixed, None makes them prunable where the output layer allows it.
    `couple_depthwise`: one group for a layer and the depthwise layer it feeds
    (module docstring).
    """
    if prune_outputs is None:
        try:
            return plan_model(graph, True, couple_depthwise)
        except FinePruneError as exc:
            plan = plan_model(graph, False, couple_depthwise)  # raises again when the problem is not the output layer
            plan.excluded.append(("(output classes)", f"not prunable: {exc}"))
            return plan
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(
            f"expected a model with one input and one output, got {len(graph.inputs)} inputs "
            f"and {len(graph.outputs)} outputs"
        )
    rules = {id(n): rule_for(n.layer) for n in graph.nodes if n.layer is not None}
    calls = {}
    for node in graph.nodes:
        if node.layer is not None and rules[id(node)].role is Role.UNITS:
            calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
            if calls[id(node.layer)] > 1:
                raise ModelError(f"layer {node.name!r} is called more than once; shared layers are not supported")
    consumers = graph.consumers()
    outputs = _with_aliases(graph, graph.outputs)
    _static(graph.shapes[graph.inputs[0]], "the model input")

    groups, excluded, absorbed = [], [], set()
    output_kind = OUTPUT_LOGITS
    for node in graph.nodes:
        if node.layer is None or rules[id(node)].role is not Role.UNITS or id(node) in absorbed:
            continue
        chain, tensor = _follow_chain(node, graph, consumers, rules, outputs)
        name, members = node.name, (node.name,)
        coupled = _coupled_depthwise(tensor, graph, consumers, rules, outputs) if couple_depthwise else None
        if coupled is not None:
            between, depthwise, depthwise_chain, end = coupled
            # Coupled only where the depthwise chain's end is itself maskable; otherwise both stay separate.
            if end not in outputs and _exclusion_reason(end, consumers, rules, outputs, graph) is None:
                absorbed.add(id(depthwise))
                chain, tensor = chain + between + [depthwise] + depthwise_chain, end
                name, members = f"{node.name}+{depthwise.name}", (node.name, depthwise.name)
        shape = _static(graph.shapes[tensor], f"output of {node.name!r}")
        units = int(shape[-1])
        positions = _prod(shape[1:-1])
        layer_class = type(node.layer).__name__
        if tensor in outputs:
            last = chain[-1].layer if chain else node.layer
            if activation_name(last) in ("softmax",):
                output_kind = OUTPUT_PROBABILITIES
            if prune_outputs:
                groups.append(PlannedGroup(node.name, layer_class, units, 1, ROLE_OUTPUT, tensor, chain))
            else:
                excluded.append((node.name, "output layer (to prune classes, export with --prune-outputs; "
                                            "Python: prune_outputs=True)"))
            continue
        reason = _exclusion_reason(tensor, consumers, rules, outputs, graph)
        if reason is not None:
            excluded.append((node.name, reason))
            continue
        if units < 2:
            excluded.append((name, "has a single unit"))
            continue
        if len(members) > 1:
            layer_class = f"{layer_class}+{type(coupled[1].layer).__name__}"
        end_layer = chain[-1].layer if chain else node.layer
        groups.append(PlannedGroup(name, layer_class, units, positions, ROLE_HIDDEN, tensor, chain, members,
                                   _ends_non_negative(end_layer), _ends_above_minus_one(end_layer)))
    if output_kind == OUTPUT_PROBABILITIES or prune_outputs:
        _check_output(graph, graph.outputs[0], groups, prune_outputs)
    # Output group last, so hidden groups occupy the start of the mask vector.
    groups.sort(key=lambda g: g.role == ROLE_OUTPUT)
    weight_layers = _weight_layers(graph, rules, groups)
    total_macs = sum(w.output_positions * w.kernel_positions * _full_pairs(w) for w in weight_layers)
    return Plan(groups, excluded, weight_layers, output_kind, total_macs)


def _with_aliases(graph, tensors):
    """The tensors plus the inner-model tensors they alias (nested models are inlined)."""
    producers = graph.producers()
    found, stack = set(), list(tensors)
    while stack:
        tid = stack.pop()
        if tid in found:
            continue
        found.add(tid)
        node = producers.get(tid)
        if node is not None and node.layer is None:
            stack.extend(node.inputs)
    return found


def _check_output(graph, output_tensor, groups, prune_outputs):
    if prune_outputs and not any(g.role == ROLE_OUTPUT for g in groups):
        raise ModelError(
            "prune_outputs=True needs the model output to be a Dense/Conv layer (optionally followed by "
            "BatchNormalization/activation); this model's output comes from another layer"
        )
    shape = graph.shapes[output_tensor]
    if prune_outputs and len(shape) != 2:
        raise ModelError(f"prune_outputs=True needs a (batch, classes) output, got shape {shape}")


def _full_pairs(w):
    if w.kind == "depthwise":
        return w.out_channels
    return sum(c * r for _, c, r in w.in_segments) * w.out_channels


# -- weight and MAC accounting -----------------------------------------------

def _provenance(graph, rules, groups):
    """Tensor id -> list of [group index or None, channels, repeat] along the last axis."""
    unit_of = {g.unit_tensor: i for i, g in enumerate(groups)}
    prov = {}

    def fresh(tid):
        return [[None, int(graph.shapes[tid][-1]), 1]]

    for tid in graph.inputs:
        prov[tid] = fresh(tid)
    for node in graph.nodes:
        ins = [prov.get(t) for t in node.inputs]
        if node.layer is None:
            result = ins[0]
        else:
            role = rules[id(node)].role
            out = node.outputs[0]
            in_shape = graph.shapes[node.inputs[0]] if node.inputs else None
            out_shape = graph.shapes[out]
            if role in (Role.CHAIN, Role.CHANNELWISE) or (role is Role.ELEMENTWISE_OP and len(ins) == 1):
                result = ins[0] if not is_mixing(node.layer, rules[id(node)]) else None
            elif role is Role.FLATTEN or role is Role.RESHAPE:
                result = _reshaped(ins[0], in_shape, out_shape)
            elif role is Role.CONCAT:
                if _concat_axis(node, graph) == len(out_shape) - 1 and all(p is not None for p in ins):
                    result = [seg for p in ins for seg in p]
                else:
                    result = None
            elif role is Role.MERGE or role is Role.ELEMENTWISE_OP:
                result = ins[0] if all(p == ins[0] for p in ins) else None
            else:
                result = None
        for tid in node.outputs:
            if tid in unit_of:
                prov[tid] = [[unit_of[tid], int(graph.shapes[tid][-1]), 1]]
            elif result is not None and sum(c * r for _, c, r in result) == int(graph.shapes[tid][-1] or -1):
                prov[tid] = [list(s) for s in result]
            else:
                prov[tid] = fresh(tid) if graph.shapes[tid][-1] is not None else None
    return prov


def _reshaped(segments, in_shape, out_shape):
    if segments is None or in_shape is None or any(d is None for d in in_shape[1:] + out_shape[1:]):
        return None
    in_last, out_last = int(in_shape[-1]), int(out_shape[-1])
    # Channels stay innermost when the trailing input dims merge into the new last axis.
    product = 1
    for dim in reversed(in_shape[1:]):
        product *= int(dim)
        if product == out_last:
            factor = out_last // in_last
            return [[g, c, r * factor] for g, c, r in segments]
        if product > out_last:
            break
    return None


def _attached_params(group):
    """{member layer name: BatchNormalization parameters per unit that go with a pruned unit}."""
    totals, member = {name: 0 for name in group.members}, group.members[0]
    for node in group.chain:
        if node.name in totals:
            member = node.name
        elif isinstance(node.layer, layers.BatchNormalization):
            channels = int(node.layer.moving_mean.shape[0])
            totals[member] += node.layer.count_params() // channels
    return totals


def _weight_layers(graph, rules, groups):
    prov = _provenance(graph, rules, groups)
    group_of_layer = {}
    for i, g in enumerate(groups):
        attached = _attached_params(g)
        group_of_layer.update({name: (i, attached[name]) for name in g.members})
    result = []
    for node in graph.nodes:
        if node.layer is None or rules[id(node)].role is not Role.UNITS:
            continue
        layer = node.layer
        kind = rules[id(node)].unit_kind
        in_shape = graph.shapes[node.inputs[0]]
        out_shape = graph.shapes[node.outputs[0]]
        in_channels = int(in_shape[-1])
        segments = prov.get(node.inputs[0]) or [[None, in_channels, 1]]
        out_channels = int(out_shape[-1])
        out_positions = _prod(out_shape[1:-1])
        entry = group_of_layer.get(node.name)
        out_group = entry[0] if entry else None
        bias = 1 if getattr(layer, "use_bias", False) else 0
        attached = entry[1] if entry else 0
        if kind is UnitKind.DENSE:
            kernel = layer.kernel.shape
            result.append(WeightLayer(node.name, "dense", out_group, out_channels, _tuple(segments), 1,
                                      _prod(kernel[:-2]), out_positions, bias + attached))
        elif kind is UnitKind.DEPTHWISE:
            kernel = layer.kernel.shape
            result.append(WeightLayer(node.name, "depthwise", out_group, out_channels, _tuple(segments),
                                      int(kernel[-1]), _prod(kernel[:-2]), out_positions, bias + attached))
        else:
            kernel = layer.depthwise_kernel.shape
            mid = in_channels * int(kernel[-1])
            result.append(WeightLayer(node.name + "/depthwise", "depthwise", None, mid, _tuple(segments),
                                      int(kernel[-1]), _prod(kernel[:-2]), out_positions, 0))
            result.append(WeightLayer(node.name + "/pointwise", "dense", out_group, out_channels,
                                      ((None, mid, 1),), 1, 1, out_positions, bias + attached))
    return result


def _tuple(segments):
    return tuple(tuple(s) for s in segments)
