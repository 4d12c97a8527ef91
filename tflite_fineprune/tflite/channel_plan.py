"""Remove pruned channels from a converted TFLite graph, with numpy only.

The `infer` subgraph of an export multiplies each unit group's tensor by a
slice of the `masks` variable. Once the masks are fixed, a zero mask entry
means the channel carries nothing, so it can be cut out of the graph:

1. variable reads become constants and everything computed from constants
   alone is folded (`folding`);
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
   tensors and buffers are removed (`compaction`).

A group whose removal would be inexact (a constant channel into a padded
convolution, a channel-mixing op, garbage reaching a consumer) raises
`Unslimmable`; the caller keeps that group as a constant mask instead, so the
result is always exact.
"""

import math

import numpy as np

from ..errors import SlimError
from .ops import BINARY, COMPARISONS, POOLS, REDUCERS, SOURCES, SPATIAL, UNARY, fused
from .types import FLOAT32


class Unslimmable(SlimError):
    """Removing the channels of `groups` would change the outputs (`reason` says why); slim keeps them masked."""

    def __init__(self, groups, reason):
        super().__init__(reason)
        self.groups = frozenset(groups)
        self.reason = reason


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
        if name in SOURCES:
            sources.add(p)
        elif name in UNARY:
            stack.append(op.inputs[0])
        elif name in BINARY or name in COMPARISONS or name == "SELECT_V2":
            stack.extend(t for t in op.inputs if graph.const(t) is None)
        elif name in ("DEPTHWISE_CONV_2D", *SPATIAL) and graph.shape(op.inputs[0])[-1] == graph.shape(t)[-1]:
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
                if name in UNARY:
                    handler = self._unary
                elif name in BINARY or name in COMPARISONS:
                    handler = self._binary
                elif name in POOLS:
                    handler = self._pool
                elif name in REDUCERS:
                    handler = self._reduce
                else:
                    groups = sorted(set().union(*(self.origin[t] for t in affected)))
                    raise SlimError(f"slim does not know how to remove channels through a {name} op "
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
        self._set(op.outputs[0], keep, fused(out_values, op), self._origin(affected))

    # -- channel-preserving ops ------------------------------------------------

    def _unary(self, i, op, affected):
        keep, dropped = self._input(op.inputs[0])
        with np.errstate(all="ignore"):  # kept channels hold 0 here (LOG, RSQRT of 0), and are not read
            values = UNARY[self.graph.names[i]](dropped, op)
        self._set(op.outputs[0], keep, values, self._origin(affected))

    def _binary(self, i, op, affected):
        g = self.graph
        keep = self._input(affected[0])[0]
        operands = self._operands(i, op, op.inputs[:2], keep, affected)
        with np.errstate(all="ignore"):
            result = {**BINARY, **COMPARISONS}[g.names[i]](operands[0], operands[1])
            if g.names[i] == "MUL":  # zero times removed garbage is zero: this is how masks cut channels
                result = np.where((operands[0] == 0) | (operands[1] == 0), 0.0, result)
        self._set(op.outputs[0], keep, fused(result, op), self._origin(affected))

    def _select_v2(self, i, op, affected):
        """where(condition, a, b) per channel (SELU); a removed channel's garbage condition selects garbage."""
        keep = self._input(affected[0])[0]
        condition, a, b = self._operands(i, op, op.inputs[:3], keep, affected)
        result = np.where(np.isnan(condition), np.nan, np.where(condition != 0, a, b))
        self._set(op.outputs[0], keep, result, self._origin(affected))

    def _operands(self, i, op, inputs, keep, affected):
        """What each input holds in every channel: a pruned tensor's dropped values or a constant's.

        Per-channel constants lose the removed channels in the graph; every pruned
        input must keep the same channels.
        """
        g = self.graph
        channels = g.shape(op.outputs[0])[-1]
        operands = []
        for position, t in enumerate(inputs):
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
        return operands

    def _pool(self, i, op, affected):
        keep, dropped = self._input(op.inputs[0])
        self._set(op.outputs[0], keep, fused(dropped, op), self._origin(affected))

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
                raise SlimError(f"slim cannot rewrite a {name} reading the channel count of a pruned tensor")

    def _same_channels(self, i, op, affected):
        """An op that moves or crops positions only: the channels and what the dropped ones hold stay."""
        g = self.graph
        if g.shape(op.outputs[0])[-1] != g.shape(op.inputs[0])[-1]:
            self.fail(affected, f"{g.names[i]} moves the channel axis", i)
        keep, dropped = self._input(op.inputs[0])
        self._set(op.outputs[0], keep, dropped, self._origin(affected))

    _squeeze = _expand_dims = _batch_to_space_nd = _same_channels

    def _space_to_batch_nd(self, i, op, affected):
        """A dilated convolution's input: zero padding of the spatial axes, blocks of positions into the batch."""
        keep, dropped = self._input(op.inputs[0])
        paddings = self.graph.const(op.inputs[2])
        constants = dropped[~keep]
        if (paddings is None or np.any(paddings)) and np.any(constants[~np.isnan(constants)] != 0):
            self.fail(affected, "padding a pruned constant channel", i)
        self._same_channels(i, op, affected)

    def _slice(self, i, op, affected):
        """Cropping: a slice of positions that keeps every channel (its size entry follows the kept count)."""
        g = self.graph
        keep = self._input(op.inputs[0])[0]
        begin, size = g.const(op.inputs[1]), g.const(op.inputs[2])
        if begin is None or size is None or begin[-1] != 0 or size[-1] not in (-1, len(keep)):
            self.fail(affected, "a slice of the channel axis", i)
        if size[-1] != -1:
            size = np.array(size)
            size[-1] = keep.sum()
            g.replace_input(op, 2, size, op.inputs[2])
        self._same_channels(i, op, affected)

    def _strided_slice(self, i, op, affected):
        """Cropping: a strided slice of positions that keeps every channel (its end entry follows the kept count)."""
        g = self.graph
        options = op.builtinOptions
        keep = self._input(op.inputs[0])[0]
        rank = len(g.shape(op.inputs[0]))
        begin, end, strides = (g.const(t) for t in op.inputs[1:4])
        last = 1 << (rank - 1)  # the channel axis' bit in the masks
        if any(getattr(options, k, 0) for k in ("ellipsisMask", "newAxisMask", "shrinkAxisMask", "offset")) \
                or begin is None or end is None or strides is None or len(begin) != rank:
            self.fail(affected, "a strided slice slim does not rewrite", i)
        whole = (options.beginMask & last or begin[-1] == 0) and strides[-1] == 1 \
            and (options.endMask & last or end[-1] >= len(keep))
        if not whole:
            self.fail(affected, "a slice of the channel axis", i)
        if not options.endMask & last:
            end = np.array(end)
            end[-1] = keep.sum()
            g.replace_input(op, 2, end, op.inputs[2])
        self._same_channels(i, op, affected)

    def _batch_matmul(self, i, op, affected):
        """x @ W with a constant W (a classifier kernel from the state): removed input channels drop W's rows."""
        g = self.graph
        x, w_t = op.inputs[0], op.inputs[1]
        w, options = g.const(w_t), op.builtinOptions
        if x not in self.keep or w is None or w.ndim != 2 or getattr(options, "adjX", False):
            self.fail(affected, "a BATCH_MATMUL whose right operand is pruned or computed at run time", i)
        g.check_float(w_t, "matrix")
        keep, dropped = self._input(x)
        values = dropped[~keep]
        if np.isnan(values).any():
            self.fail([x], "removed channels reach BATCH_MATMUL before a mask zeroes them", i)
        if np.any(values != 0):
            self.fail([x], "a constant channel would reach a BATCH_MATMUL (it has no bias to fold it into)", i)
        g.replace_input(op, 1, w[:, keep] if getattr(options, "adjY", False) else w[keep], w_t)

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
        self._set(op.outputs[0], keep, fused(dropped, op), self._origin(affected))
