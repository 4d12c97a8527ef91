"""Remove pruned channels from a converted TFLite graph, with numpy only.

The `infer` subgraph of an export multiplies each unit group's tensor by a
slice of the `masks` variable. Once the masks are fixed, a zero mask entry
means the channel carries nothing, so it can be cut out of the graph:

1. variable reads become constants and everything computed from constants
   alone is folded;
2. *backward*: each mask multiplication is traced back through per-channel
   ops (activations, BatchNorm's MUL/ADD, depthwise convolutions, reshapes
   keeping the channel axis) to the CONV_2D / FULLY_CONNECTED producing the
   channels, whose dead output channels are removed;
3. *forward*: in execution order every tensor records which channels of its
   last axis it keeps and what the dropped ones would have held: garbage (NaN,
   the removed producer's output, which a mask must zero before anyone reads
   it), 0, or a per-channel constant (a depthwise bias, a mean-compensation
   fill). Consumers drop those input channels; constants are folded into the
   consumer's bias where that is exact (fully connected, unpadded or 1x1
   convolutions), shapes and reshape targets are updated;
4. multiplications by all-ones and additions of all-zeros, dead ops, unused
   tensors and buffers are removed.

A group whose removal would be inexact (a constant channel into a padded
convolution, a channel-mixing op, garbage reaching a consumer) raises
`Unslimmable`; the caller keeps that group as a constant mask instead, so the
result is always exact.
"""

import math

import numpy as np

from .errors import FinePruneError

FLOAT32, INT8 = 0, 9  # TensorType values
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
                9: np.int8, 10: np.float64}


def symmetric_scales(tensor):
    """The float64 scales of a tensor quantized symmetrically (every zero point 0), or None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    if q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0):
        return None
    return np.asarray(q.scale, np.float64)


def _along(scales, axis, ndim):
    """`scales` shaped to broadcast along `axis` of an `ndim` array (one scale: a scalar)."""
    if len(scales) == 1:
        return scales[0]
    shape = [1] * ndim
    shape[axis] = len(scales)
    return scales.reshape(shape)


def quantization_parameters(schema, scales, axis):
    """Symmetric (zero point 0) `QuantizationParametersT` with one scale per channel of `axis`."""
    q = schema.QuantizationParametersT()
    q.scale = np.asarray(scales, np.float32)
    q.zeroPoint = np.zeros(len(scales), np.int64)
    q.quantizedDimension = int(axis)
    return q


class Unslimmable(Exception):
    """Removing the channels of `groups` would change the outputs (`reason` says why)."""

    def __init__(self, groups, reason):
        super().__init__(reason)
        self.groups = frozenset(groups)
        self.reason = reason


def _erf(values):
    return np.vectorize(math.erf, otypes=[np.float64])(values)


def _gelu(x, op):
    if op.builtinOptions is not None and getattr(op.builtinOptions, "approximate", False):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


_UNARY = {
    "RELU": lambda x, op: np.maximum(x, 0),
    "RELU6": lambda x, op: np.clip(x, 0, 6),
    "RELU_N1_TO_1": lambda x, op: np.clip(x, -1, 1),
    "RELU_0_TO_1": lambda x, op: np.clip(x, 0, 1),
    "LOGISTIC": lambda x, op: 1 / (1 + np.exp(-x)),
    "TANH": lambda x, op: np.tanh(x),
    "HARD_SWISH": lambda x, op: x * np.clip(x + 3, 0, 6) / 6,
    "GELU": _gelu,
    "ELU": lambda x, op: np.where(x > 0, x, np.expm1(x)),
    "LEAKY_RELU": lambda x, op: np.where(x > 0, x, x * op.builtinOptions.alpha),
    "ABS": lambda x, op: np.abs(x),
    "NEG": lambda x, op: -x,
    "SQUARE": lambda x, op: x * x,
    "EXP": lambda x, op: np.exp(x),
    # BatchNorm with the user's statistics (relative AdaBN) computes its scale as rsqrt(variance + eps)
    # in the graph: folded once the statistics are constants, so the scale is a per-channel constant.
    "RSQRT": lambda x, op: 1 / np.sqrt(x),
    "SQRT": lambda x, op: np.sqrt(x),
}
_BINARY = {
    "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
    "MAXIMUM": np.maximum, "MINIMUM": np.minimum, "SQUARED_DIFFERENCE": lambda a, b: (a - b) ** 2,
}
_FUSED = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
_POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
_REDUCERS = ("MEAN", "REDUCE_MAX", "REDUCE_MIN")
_SOURCES = ("CONV_2D", "FULLY_CONNECTED")


def _fused(values, op):
    code = getattr(op.builtinOptions, "fusedActivationFunction", 0) if op.builtinOptions is not None else 0
    if code not in _FUSED:
        raise FinePruneError(f"fused activation {code} is not supported by slim")
    name = _FUSED[code]
    return values if name is None else _UNARY[name](values, op)


class Graph:
    """One subgraph of a `ModelT`, with constant access and op names."""

    def __init__(self, schema, model, index):
        self.schema = schema
        self.model = model
        self.sub = model.subgraphs[index]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.ops = self.sub.operators
        self.names = []
        for op in self.ops:
            op.inputs = [int(t) for t in (op.inputs if op.inputs is not None else [])]
            op.outputs = [int(t) for t in (op.outputs if op.outputs is not None else [])]
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            custom = code.customCode.decode() if code.customCode else "CUSTOM"
            self.names.append(custom if builtin == schema.BuiltinOperator.CUSTOM else names.get(builtin, str(builtin)))
        self.sub.inputs = [int(t) for t in self.sub.inputs]
        self.sub.outputs = [int(t) for t in self.sub.outputs]
        self.removed = set()
        self._consts = {}

    # -- tensors -----------------------------------------------------------

    def shape(self, t):
        shape = self.sub.tensors[t].shape
        return [int(d) for d in shape] if shape is not None else []

    def const(self, t):
        if t < 0:
            return None
        if t not in self._consts:
            tensor = self.sub.tensors[t]
            data = self.model.buffers[tensor.buffer].data
            dtype = _NUMPY_TYPES.get(tensor.type)
            if data is None or len(data) == 0 or dtype is None or tensor.isVariable:
                return None
            raw = np.asarray(data, np.uint8).tobytes()
            self._consts[t] = np.frombuffer(raw, dtype).reshape(self.shape(t))
        return self._consts[t]

    def _buffer(self, array):
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def make_const(self, t, array):
        """Turn tensor `t` (e.g. a variable read) into a constant holding `array`."""
        tensor = self.sub.tensors[t]
        array = np.asarray(array, _NUMPY_TYPES[tensor.type])
        tensor.buffer = self._buffer(array)
        self.set_shape(t, array.shape)
        self._consts[t] = array

    def replace_input(self, op, position, array, like, tensor_type=None):
        """Point input `position` of `op` at a new constant tensor (constants may be shared between ops).

        The new tensor has `like`'s name, type (or `tensor_type`) and quantization.
        """
        old = self.sub.tensors[like]
        tensor = self.schema.TensorT()
        tensor.name = (old.name or b"") + b"/slim"
        tensor.type = old.type if tensor_type is None else tensor_type
        array = np.asarray(array, _NUMPY_TYPES[tensor.type])
        tensor.buffer = self._buffer(array)
        tensor.shape = np.array(array.shape, np.int32)
        tensor.quantization = old.quantization if tensor_type is None else None
        self.sub.tensors.append(tensor)
        index = len(self.sub.tensors) - 1
        self._consts[index] = array
        while len(op.inputs) <= position:
            op.inputs.append(-1)
        op.inputs[position] = index
        return index

    def weights(self, t, what):
        """A weight tensor's values as float64: float32, or int8 with zero-point-0 scales (dynamic range)."""
        tensor = self.sub.tensors[t]
        values = self.const(t)
        if tensor.type == FLOAT32 and values is not None:
            return values.astype(np.float64)
        scales = symmetric_scales(tensor)
        if tensor.type != INT8 or values is None or scales is None:
            raise FinePruneError(f"slim handles float32 weights and symmetric int8 weights (dynamic range) only; "
                                 f"{what} (tensor {t}) has type {self._type_name(tensor.type)}")
        return values.astype(np.float64) * _along(scales, tensor.quantization.quantizedDimension, values.ndim)

    def replace_weights(self, op, position, values, like, kept=None):
        """`replace_input` for weights: int8 ones are stored again with their own scales, `kept` channels of them.

        Re-quantizing with the original scales is exact: the values are those scales times integers.
        """
        old = self.sub.tensors[like]
        if old.type != INT8:
            return self.replace_input(op, position, values, like)
        scales = symmetric_scales(old)
        axis = old.quantization.quantizedDimension
        if kept is not None and len(scales) > 1:
            scales = scales[kept]
        divisors = _along(np.where(scales == 0, 1.0, scales), axis, values.ndim)  # a zero scale holds zeros
        integers = np.clip(np.round(values / divisors), -127, 127)
        index = self.replace_input(op, position, integers, like, tensor_type=INT8)
        self.sub.tensors[index].quantization = quantization_parameters(self.schema, scales, axis)
        return index

    def set_shape(self, t, shape):
        tensor = self.sub.tensors[t]
        signature = tensor.shapeSignature
        tensor.shape = np.array(shape, np.int32)
        if signature is not None and len(signature) == len(shape):
            tensor.shapeSignature = np.where(np.asarray(signature) < 0, signature, shape).astype(np.int32)

    def check_float(self, t, what):
        tensor = self.sub.tensors[t]
        if tensor.type != 0:
            raise FinePruneError(f"slim handles float32 weights only; {what} (tensor {t}) has type "
                                 f"{self._type_name(tensor.type)}")

    def _type_name(self, code):
        names = {v: k for k, v in vars(self.schema.TensorType).items() if not k.startswith("_")}
        return names.get(code, str(code))

    # -- structure -----------------------------------------------------------

    def producers(self):
        return {t: i for i, op in enumerate(self.ops) if i not in self.removed for t in op.outputs}

    def consumers(self):
        found = {}
        for i, op in enumerate(self.ops):
            if i not in self.removed:
                for t in op.inputs:
                    found.setdefault(t, []).append(i)
        return found


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
                raise FinePruneError(f"the infer graph reads variable {variable!r}, which slim does not know")
            graph.make_const(op.outputs[0], variables[variable])
            if variable == "masks":
                slices[op.outputs[0]] = (0, len(variables[variable]))
            graph.removed.add(i)
        elif name in ("ASSIGN_VARIABLE", "WHILE", "IF", "CALL"):
            raise FinePruneError(f"the infer graph holds a {name} op, which slim cannot rewrite")
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
    elif name in _BINARY:
        value = _fused(_BINARY[name](inputs[0].astype(np.float64), inputs[1]), op)
    elif name in _UNARY:
        value = _UNARY[name](inputs[0].astype(np.float64), op)
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


def trace_source(graph, tensor, producers):
    """The CONV_2D / FULLY_CONNECTED ops whose output channels become `tensor`'s, through per-channel ops."""
    stack, seen, sources = [tensor], set(), set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        p = producers.get(t)
        if p is None:
            return None
        name, op = graph.names[p], graph.ops[p]
        if name in _SOURCES:
            sources.add(p)
        elif name in _UNARY:
            stack.append(op.inputs[0])
        elif name in _BINARY:
            stack.extend(t for t in op.inputs if graph.const(t) is None)
        elif name == "DEPTHWISE_CONV_2D" and graph.shape(op.inputs[0])[-1] == graph.shape(t)[-1]:
            stack.append(op.inputs[0])
        elif name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", *_POOLS) \
                and graph.shape(op.inputs[0])[-1] == graph.shape(t)[-1]:
            stack.append(op.inputs[0])
        else:
            return None
    return sources


class ChannelPlan:
    """Forward pass over the graph: which channels each tensor keeps and what the dropped ones hold."""

    def __init__(self, graph, source_dead, source_groups):
        self.graph = graph
        self.source_dead = source_dead  # op index -> bool array of removed output channels
        self.source_groups = source_groups  # op index -> set of group indices
        self.keep, self.dropped, self.origin = {}, {}, {}

    def fail(self, tensors, reason, op=None):
        groups = set(self.source_groups.get(op, ()))
        for t in tensors:
            groups |= self.origin.get(t, set())
        raise Unslimmable(groups, reason)

    def run(self):
        g = self.graph
        for i, op in enumerate(g.ops):
            if i in g.removed:
                continue
            affected = [t for t in op.inputs if t in self.keep]
            if not affected and i not in self.source_dead:
                continue
            name = g.names[i]
            handler = getattr(self, "_" + name.lower(), None)
            if handler is None:
                if name in _UNARY:
                    handler = self._unary
                elif name in _BINARY:
                    handler = self._binary
                elif name in _POOLS:
                    handler = self._pool
                elif name in _REDUCERS:
                    handler = self._reduce
                else:
                    groups = sorted(set().union(*(self.origin[t] for t in affected)))
                    raise FinePruneError(f"slim does not know how to remove channels through a {name} op "
                                         f"(reached from unit groups {groups})")
            handler(i, op, affected)
        for t in g.sub.outputs:
            if t in self.keep:
                self.fail([t], "pruned channels reach the model output")
        for t, keep in self.keep.items():
            shape = g.shape(t)
            shape[-1] = int(keep.sum())
            g.set_shape(t, shape)

    def _set(self, t, keep, dropped, origin):
        if keep.all():
            return
        self.keep[t], self.dropped[t], self.origin[t] = keep, np.where(keep, 0.0, dropped), set(origin)

    def _input(self, t):
        channels = self.graph.shape(t)[-1]
        if t not in self.keep:
            return np.ones(channels, bool), np.zeros(channels)
        return self.keep[t], self.dropped[t]

    def _origin(self, tensors):
        return set().union(*(self.origin.get(t, set()) for t in tensors))

    # -- weight layers -------------------------------------------------------

    def _folded_bias(self, i, op, x, weights_by_input):
        """Bias after folding constant dropped input channels, and the kept-input mask."""
        keep, dropped = self._input(x)
        values = dropped[~keep]
        if np.isnan(values).any():
            self.fail([x], f"removed channels reach {self.graph.names[i]} before a mask zeroes them", i)
        bias = self._bias(op, weights_by_input.shape[0])
        if np.any(values != 0):
            bias = bias + weights_by_input[:, ~keep] @ values
        return keep, bias

    def _bias(self, op, channels):
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            self.graph.check_float(op.inputs[2], "bias")
            return self.graph.const(op.inputs[2]).astype(np.float64)
        return np.zeros(channels)

    def _write(self, i, op, weights, bias, out_keep):
        g = self.graph
        g.replace_weights(op, 1, weights, op.inputs[1], out_keep)
        g.replace_input(op, 2, bias[out_keep] if out_keep is not None else bias, op.inputs[1], tensor_type=FLOAT32)

    def _conv_2d(self, i, op, affected):
        g = self.graph
        x, w_t = op.inputs[0], op.inputs[1]
        w = g.weights(w_t, "filter")  # [out, h, w, in]
        if w.shape[-1] != g.shape(x)[-1]:
            self.fail([x], "grouped convolution", i)
        if x in self.keep:
            keep_in, dropped = self._input(x)
            constants = dropped[~keep_in]
            if np.any(constants[~np.isnan(constants)] != 0):
                unpadded = w.shape[1] == w.shape[2] == 1 or op.builtinOptions.padding == g.schema.Padding.VALID
                if not unpadded:
                    self.fail([x], "a constant channel would reach a padded convolution", i)
            keep_in, bias = self._folded_bias(i, op, x, w.sum(axis=(1, 2)))
            w = w[..., keep_in]
        else:
            bias = self._bias(op, w.shape[0])
        self._finish_source(i, op, w, bias, affected)

    def _fully_connected(self, i, op, affected):
        g = self.graph
        x, w_t = op.inputs[0], op.inputs[1]
        w = g.weights(w_t, "weights")  # [out, in]
        if x in self.keep:
            keep_in, bias = self._folded_bias(i, op, x, w)
            w = w[:, keep_in]
        else:
            bias = self._bias(op, w.shape[0])
        self._finish_source(i, op, w, bias, affected)

    def _finish_source(self, i, op, w, bias, affected):
        dead = self.source_dead.get(i)
        out_keep = None
        if dead is not None:
            if len(dead) != w.shape[0]:
                self.fail([], "mask and layer sizes differ", i)
            out_keep = ~dead
            w = w[out_keep]
        self._write(i, op, w, bias, out_keep)
        if out_keep is not None:
            origin = self._origin(affected) | set(self.source_groups[i])
            self._set(op.outputs[0], out_keep, np.full(len(out_keep), np.nan), origin)

    def _depthwise_conv_2d(self, i, op, affected):
        g = self.graph
        x, w_t = op.inputs[0], op.inputs[1]
        w = g.weights(w_t, "filter")  # [1, h, w, channels * multiplier]
        multiplier = w.shape[-1] // g.shape(x)[-1]
        keep_in, dropped_in = self._input(x)
        keep, values = np.repeat(keep_in, multiplier), np.repeat(dropped_in, multiplier)
        bias = self._bias(op, w.shape[-1])
        constant = ~keep & ~np.isnan(values) & (values != 0)
        if constant.any() and op.builtinOptions.padding != g.schema.Padding.VALID:
            self.fail([x], "a constant channel would reach a padded depthwise convolution", i)
        out_values = np.where(np.isnan(values), np.nan, values * w.sum(axis=(0, 1, 2)) + bias)
        g.replace_weights(op, 1, w[..., keep], w_t, keep)
        g.replace_input(op, 2, bias[keep], w_t, tensor_type=FLOAT32)
        self._set(op.outputs[0], keep, _fused(out_values, op), self._origin(affected))

    # -- channel-preserving ops ------------------------------------------------

    def _unary(self, i, op, affected):
        keep, dropped = self._input(op.inputs[0])
        self._set(op.outputs[0], keep, _UNARY[self.graph.names[i]](dropped, op), self._origin(affected))

    def _binary(self, i, op, affected):
        g = self.graph
        out = op.outputs[0]
        channels = g.shape(out)[-1]
        keep = self._input(affected[0])[0]
        operands = []
        for position, t in enumerate(op.inputs[:2]):
            value = g.const(t)
            if value is None:
                if t not in self.keep or not np.array_equal(self.keep[t], keep):
                    self.fail(affected, f"{g.names[i]} merges tensors with different pruned channels", i)
                operands.append(self.dropped[t])
            elif value.size == 1:
                operands.append(np.full(channels, float(value.reshape(-1)[0])))
            elif value.shape[-1] == channels and value.size == channels:
                g.replace_input(op, position, value.reshape(-1)[keep].reshape(value.shape[:-1] + (-1,)), t)
                operands.append(value.reshape(-1).astype(np.float64))
            else:
                self.fail(affected, f"{g.names[i]} with a constant that is not per channel", i)
        with np.errstate(all="ignore"):
            result = _BINARY[g.names[i]](operands[0], operands[1])
            if g.names[i] == "MUL":  # zero times removed garbage is zero: this is how masks cut channels
                result = np.where((operands[0] == 0) | (operands[1] == 0), 0.0, result)
        self._set(out, keep, _fused(result, op), self._origin(affected))

    def _pool(self, i, op, affected):
        keep, dropped = self._input(op.inputs[0])
        self._set(op.outputs[0], keep, _fused(dropped, op), self._origin(affected))

    def _reduce(self, i, op, affected):
        x = op.inputs[0]
        rank = len(self.graph.shape(x))
        axes = np.asarray(self.graph.const(op.inputs[1])).reshape(-1) % rank
        if rank - 1 in axes:
            self.fail(affected, f"{self.graph.names[i]} reduces over the channel axis", i)
        keep, dropped = self._input(x)
        self._set(op.outputs[0], keep, dropped, self._origin(affected))

    def _pad(self, i, op, affected, value=0.0):
        x = op.inputs[0]
        paddings = np.asarray(self.graph.const(op.inputs[1]))
        keep, dropped = self._input(x)
        constants = dropped[~keep]
        if paddings[-1].any() or np.any(constants[~np.isnan(constants)] != value):
            self.fail(affected, "padding a pruned constant channel", i)
        self._set(op.outputs[0], keep, dropped, self._origin(affected))

    def _padv2(self, i, op, affected):
        self._pad(i, op, affected, float(np.asarray(self.graph.const(op.inputs[2])).reshape(-1)[0]))

    def _reshape(self, i, op, affected):
        g = self.graph
        x, out = op.inputs[0], op.outputs[0]
        before, after = g.shape(x), g.shape(out)
        keep, dropped = self._input(x)
        if after[-1] == before[-1]:
            new_keep, new_dropped = keep, dropped
        elif len(after) == 2 and after[-1] == math.prod(before[1:]):  # flatten: channels repeat per position
            positions = math.prod(before[1:-1])
            new_keep, new_dropped = np.tile(keep, positions), np.tile(dropped, positions)
        else:
            self.fail(affected, f"reshape {before} -> {after} mixes the channel axis", i)
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            self._set_last_dim(i, op.inputs[1], int(new_keep.sum()), affected)
        if op.builtinOptions is not None and getattr(op.builtinOptions, "newShape", None) is not None:
            op.builtinOptions.newShape = list(op.builtinOptions.newShape[:-1]) + [int(new_keep.sum())]
        self._set(out, new_keep, new_dropped, self._origin(affected))

    def _set_last_dim(self, i, shape_tensor, size, affected):
        """Rewrite the last entry of a reshape target: a constant, or a PACK of [batch, …, constant]."""
        g = self.graph
        target = g.const(shape_tensor)
        if target is not None:
            target = np.array(target)
            target[-1] = size
            g.replace_input(g.ops[i], 1, target, shape_tensor)
            return
        producer = g.producers().get(shape_tensor)
        if producer is not None and g.names[producer] == "PACK":
            pack = g.ops[producer]
            last = g.const(pack.inputs[-1])
            if last is not None and last.size == 1:
                g.replace_input(pack, len(pack.inputs) - 1, np.full(last.shape, size), pack.inputs[-1])
                return
        self.fail(affected, "a reshape target computed at run time", i)

    def _shape(self, i, op, affected):
        """SHAPE only feeds the batch size to a Flatten: fine as long as nobody reads the channel count."""
        g = self.graph
        rank = len(g.shape(op.inputs[0]))
        for user in g.consumers().get(op.outputs[0], []):
            name, user_op = g.names[user], g.ops[user]
            indices = None
            if name == "STRIDED_SLICE" and not any(getattr(user_op.builtinOptions, k, 0) for k in
                                                       ("beginMask", "endMask", "ellipsisMask")):
                indices = range(int(g.const(user_op.inputs[1])[0]), int(g.const(user_op.inputs[2])[0]))
            elif name == "GATHER" and g.const(user_op.inputs[1]) is not None:
                indices = g.const(user_op.inputs[1]).reshape(-1)
            if indices is None or any(int(k) % rank == rank - 1 for k in indices):
                raise FinePruneError(f"slim cannot rewrite a {name} reading the channel count of a pruned tensor")

    def _squeeze(self, i, op, affected):
        g = self.graph
        if g.shape(op.outputs[0])[-1] != g.shape(op.inputs[0])[-1]:
            self.fail(affected, f"{g.names[i]} moves the channel axis", i)
        keep, dropped = self._input(op.inputs[0])
        self._set(op.outputs[0], keep, dropped, self._origin(affected))

    _expand_dims = _squeeze

    def _concatenation(self, i, op, affected):
        g = self.graph
        rank = len(g.shape(op.outputs[0]))
        parts = [self._input(t) for t in op.inputs]
        if op.builtinOptions.axis % rank == rank - 1:
            keep = np.concatenate([k for k, _ in parts])
            dropped = np.concatenate([d for _, d in parts])
        else:
            if any(not np.array_equal(k, parts[0][0]) for k, _ in parts):
                self.fail(affected, "concatenation of tensors with different pruned channels", i)
            keep, dropped = parts[0]
        self._set(op.outputs[0], keep, _fused(dropped, op), self._origin(affected))


def remove_identities(graph):
    """Drop MULs by all-ones and ADD/SUBs of all-zeros (a kept group's mask, a zero fill)."""
    outputs = set(graph.sub.outputs)
    for i, op in enumerate(graph.ops):
        name = graph.names[i]
        if i in graph.removed or name not in ("MUL", "ADD", "SUB") or op.outputs[0] in outputs:
            continue
        if getattr(op.builtinOptions, "fusedActivationFunction", 0):
            continue
        neutral = 1.0 if name == "MUL" else 0.0
        positions = (0, 1) if name != "SUB" else (1,)
        for position in positions:
            value = graph.const(op.inputs[position])
            other = op.inputs[1 - position]
            if value is None or graph.const(other) is not None or np.any(value != neutral):
                continue
            if graph.shape(other) != graph.shape(op.outputs[0]):
                continue
            _alias(graph, op.outputs[0], other)
            graph.removed.add(i)
            break


def _alias(graph, old, new):
    for i, op in enumerate(graph.ops):
        if i not in graph.removed:
            op.inputs = [new if t == old else t for t in op.inputs]


def compact(graph):
    """Remove dead ops, then keep only referenced tensors of the subgraph."""
    live = set(graph.sub.outputs)
    kept_ops = []
    for i in reversed(range(len(graph.ops))):
        op = graph.ops[i]
        if i in graph.removed or not live.intersection(op.outputs):
            continue
        kept_ops.append(op)
        live.update(t for t in op.inputs if t >= 0)
    kept_ops.reverse()
    used = sorted(live | set(graph.sub.inputs) | {t for op in kept_ops for t in op.outputs})
    remap = {old: new for new, old in enumerate(used)}
    graph.sub.tensors = [graph.sub.tensors[t] for t in used]
    for op in kept_ops:
        op.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        op.outputs = [remap[t] for t in op.outputs]
    graph.sub.inputs = [remap[t] for t in graph.sub.inputs]
    graph.sub.outputs = [remap[t] for t in graph.sub.outputs]
    graph.sub.operators = kept_ops
    return remap


def compact_buffers(model):
    """Keep buffer 0 (the empty sentinel) and the buffers still referenced."""
    referenced = {0}
    for sub in model.subgraphs:
        referenced.update(t.buffer for t in sub.tensors)
    referenced.update(m.buffer for m in model.metadata or [])
    order = sorted(referenced)
    remap = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[b] for b in order]
    for sub in model.subgraphs:
        for tensor in sub.tensors:
            tensor.buffer = remap[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = remap[entry.buffer]
    model.metadataBuffer = None
