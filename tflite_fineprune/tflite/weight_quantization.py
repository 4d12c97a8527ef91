"""Dynamic-range int8 weights written into a `.tflite` by rewriting the flatbuffer, without TensorFlow.

This mimics what the TFLite converter writes for `optimizations=[DEFAULT]`
without representative data (`export_model(quantize="int8")`, checked by
dumping such files): the weights (operand 1) of CONV_2D, DEPTHWISE_CONV_2D
and FULLY_CONNECTED with at least 1024 elements become int8, symmetric (zero
point 0); biases and activations stay float and the runtime picks its hybrid
kernels from the types. Convolution filters get one scale per output channel
(axis 0; axis 3 for depthwise), as the converter writes them (op versions
CONV_2D 5, DEPTHWISE_CONV_2D 6).

FULLY_CONNECTED weights get one scale for the whole tensor and
`asymmetric_quantize_inputs` (op version 9), as converters before TF 2.15 wrote
them. Today's converter writes one scale per output unit and op version 12,
which tflite-runtime 2.14 refuses ("Didn't find op for builtin opcode
'FULLY_CONNECTED' version '12'"); marking such a file version 9 makes 2.14's
kernel use the first scale for every unit (garbage outputs, measured). One
scale keeps slim files runnable wherever the float ones run.

Every other constant stays float. The speech front-end's constants (mel
blocks, DCT) are all under 1024 elements, by design of `tflite_fineprune/converters/frontend.py`,
because a quantized mel matrix costs accuracy (docs/quantization.md): the same
rule as the converter's leaves them float here too, so a slim int8 file has
int8 exactly where an int8 export has.
"""

import numpy as np

from ..errors import FinePruneError
from .graph import Graph
from .types import FLOAT32, INT8, quantization_parameters

QUANTIZATIONS = ("int8",)  # the `quantize` choices of export_model and slim
DYNAMIC_RANGE = "int8-dynamic-range"  # how `int8` is carried out, recorded in the metadata's `quantization`
MIN_ELEMENTS = 1024  # the converter quantizes no smaller weight tensor
# op -> (axis of the per-channel scales, None: one scale; op version of the hybrid kernel)
WEIGHT_OPS = {"CONV_2D": (0, 5), "DEPTHWISE_CONV_2D": (3, 6), "FULLY_CONNECTED": (None, 9)}
WEIGHTS = 1  # operand index of the weights in those ops


def check_quantize(quantize):
    """None/"" (float) or one of QUANTIZATIONS."""
    if quantize in (None, "", "none"):
        return None
    if quantize not in QUANTIZATIONS:
        raise FinePruneError(f"unknown quantize {quantize!r}; expected one of {', '.join(QUANTIZATIONS)} or None")
    return quantize


def symmetric_int8(values, axis):
    """(int8 values, float32 scales): per slice of `axis` (None: one for all), scale = max |value| / 127."""
    others = tuple(a for a in range(values.ndim) if a != axis)
    peak = np.max(np.abs(values), axis=others, keepdims=True).astype(np.float64)
    scales = np.where(peak > 0, peak / 127.0, 1.0)  # an all-zero channel: any scale holds its zeros
    integers = np.clip(np.round(values / scales), -127, 127).astype(np.int8)
    return integers, scales.reshape(-1).astype(np.float32)


def _weight_tensors(graph):
    """{weight tensor: [(op index, op name)]} of float constants only ever read as weights of WEIGHT_OPS."""
    candidates, other_uses = {}, set()
    for i, op in enumerate(graph.ops):
        name = graph.names[i]
        for position, t in enumerate(op.inputs):
            if t < 0:
                continue
            if name in WEIGHT_OPS and position == WEIGHTS:
                candidates.setdefault(t, []).append((i, name))
            else:
                other_uses.add(t)
    return {t: users for t, users in candidates.items() if t not in other_uses}


def quantize_weights(schema, model, subgraph=0):
    """Store the large weights of `model.subgraphs[subgraph]` (a `ModelT`) as int8; returns their tensor names.

    Buffers left unused are for `compaction.compact_buffers` to drop.
    """
    graph = Graph(schema, model, subgraph)
    quantized = []
    for t, users in sorted(_weight_tensors(graph).items()):
        tensor = graph.sub.tensors[t]
        values = graph.const(t)
        if tensor.type != FLOAT32 or values is None or values.size < MIN_ELEMENTS:
            continue
        axes = {WEIGHT_OPS[name][0] for _, name in users}
        if len(axes) != 1:  # one tensor read as two kinds of weights: leave it float
            continue
        axis = axes.pop()
        integers, scales = symmetric_int8(values.astype(np.float64), axis)
        tensor.type = INT8
        tensor.buffer = graph.add_buffer(integers)
        tensor.quantization = quantization_parameters(schema, scales, axis or 0)
        for i, name in users:
            op = graph.ops[i]
            if name == "FULLY_CONNECTED" and op.builtinOptions is not None:
                op.builtinOptions.asymmetricQuantizeInputs = True
            code = model.operatorCodes[op.opcodeIndex]
            code.version = max(int(code.version), WEIGHT_OPS[name][1])
        quantized.append((tensor.name or b"").decode())
    return quantized
