"""Constant folding of a subgraph once its variables are fixed, and where the masks end up.

Slim freezes the variables (masks, counters, statistics) at a user's values;
every op computed from constants alone is then evaluated with numpy and its
output becomes a constant, so the graph left is what runs on the input.
"""

import numpy as np

from ..errors import SlimError
from .ops import BINARY, UNARY, fused


def fold_constants(graph, variables):
    """Replace variable reads by `variables[shared_name]` and fold constant-only ops.

    Returns {tensor: (offset, length)} for the tensors that are plain slices of
    the `masks` variable.
    """
    handles = {}
    slices = {}
    for i, op in enumerate(graph.ops):
        name = graph.names[i]
        if name == "CALL_ONCE":  # runs the variable initializers; the variables become constants
            graph.removed.add(i)
        elif name == "VAR_HANDLE":
            handles[op.outputs[0]] = op.builtinOptions.sharedName.decode()
            graph.removed.add(i)
        elif name == "READ_VARIABLE":
            variable = handles.get(op.inputs[0])
            if variable not in variables:
                raise SlimError(f"the infer graph reads variable {variable!r}, which slim does not know")
            graph.make_const(op.outputs[0], variables[variable])
            if variable == "masks":
                slices[op.outputs[0]] = (0, len(variables[variable]))
            graph.removed.add(i)
        elif name in ("ASSIGN_VARIABLE", "WHILE", "IF", "CALL"):
            raise SlimError(f"the infer graph holds a {name} op, which slim cannot rewrite")
        else:
            _fold(graph, i, slices)
    return slices


def _fold(graph, i, slices):
    op, name = graph.ops[i], graph.names[i]
    inputs = [graph.const(t) for t in op.inputs if t >= 0]
    if not inputs or any(v is None for v in inputs) or len(op.outputs) != 1:
        return
    out = op.outputs[0]
    if name == "SLICE":
        begin, size = inputs[1], inputs[2]
        index = tuple(slice(int(b), None if s < 0 else int(b + s)) for b, s in zip(begin, size))
        value = inputs[0][index]
        if op.inputs[0] in slices and value.ndim == 1:
            slices[out] = (slices[op.inputs[0]][0] + int(begin[0]), value.size)
    elif name == "STRIDED_SLICE":
        options = op.builtinOptions
        if any(getattr(options, k, 0) for k in ("beginMask", "endMask", "ellipsisMask", "newAxisMask",
                                                 "shrinkAxisMask", "offset")):
            return
        begin, end, strides = inputs[1], inputs[2], inputs[3]
        value = inputs[0][tuple(slice(int(b), int(e), int(s)) for b, e, s in zip(begin, end, strides))]
        if op.inputs[0] in slices and value.ndim == 1 and strides[0] == 1:
            slices[out] = (slices[op.inputs[0]][0] + int(begin[0]), value.size)
    elif name in BINARY:
        value = fused(BINARY[name](inputs[0].astype(np.float64), inputs[1]), op)
    elif name in UNARY:
        value = UNARY[name](inputs[0].astype(np.float64), op)
    elif name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        value = inputs[0].reshape(graph.shape(out))
    else:
        return
    graph.make_const(out, value)
    graph.removed.add(i)


def find_masks(graph, slices, groups):
    """{group index: (MUL op index, masked value tensor)} of the groups' mask multiplications."""
    by_slice = {(g.offset, g.units): k for k, g in enumerate(groups)}
    found = {}
    for i, op in enumerate(graph.ops):
        if i in graph.removed or graph.names[i] != "MUL":
            continue
        for position in (0, 1):
            key = slices.get(op.inputs[position])
            if key in by_slice and graph.const(op.inputs[1 - position]) is None:
                found.setdefault(by_slice[key], (i, op.inputs[1 - position]))
    return found


def initial_values(graph):
    """{variable name: the constant its initializer assigns} of the subgraph `graph` (the model's init subgraph).

    A variable's initial value is its trained value (BatchNorm statistics, a
    classifier kernel) or zeros (counters); `reset` restores the same constants.
    """
    handles, values = {}, {}
    for i, op in enumerate(graph.ops):
        name = graph.names[i]
        if name == "VAR_HANDLE":
            handles[op.outputs[0]] = op.builtinOptions.sharedName.decode()
        elif name == "ASSIGN_VARIABLE" and op.inputs[0] in handles:
            value = graph.const(op.inputs[1])
            if value is not None:
                values[handles[op.inputs[0]]] = value
    return values


def init_subgraph(graph):
    """The index of the subgraph that `graph`'s CALL_ONCE runs (the variable initializers), or None."""
    for i, op in enumerate(graph.ops):
        if graph.names[i] == "CALL_ONCE":
            return int(op.builtinOptions.initSubgraphIndex)
    return None
