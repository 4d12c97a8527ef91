"""The graph structure of a `.tflite` checked before any other reader, or an interpreter, sees the bytes.

The SHA-256 seal proves only that a file is what its own metadata says; anyone can seal a crafted file. The
interpreter's FlatBuffers verifier checks that offsets stay inside the file, not what they mean: an operator
without its inputs vector, a tensor index past the end, a constant whose buffer is shorter than its shape
crash LiteRT's C++ (a segfault, not an exception), and the schema's Python readers fail with `struct.error`,
`IndexError`, ... . `check_structure` walks every subgraph, tensor, operator, buffer and signature with the
bounds-checked reader of `flatbuffer` (no schema package needed, so it runs under tflite-runtime too) and raises
`FinePruneError` naming the first thing that does not hold.

What it cannot see: the values inside constants. A sealed file whose int32 constant (a slice size, a top-k k, a
one-hot depth) was changed passes, and it is then the kernel's to refuse; LiteRT's did in tests/test_fuzz_models.py,
tflite-runtime 2.14's (no longer maintained) crash on some.
"""

import struct

from .flatbuffer import _Reader

# Field indices in tensorflow/lite/schema/schema.fbs.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS = 1, 2, 3, 4
_MODEL_METADATA_BUFFER, _MODEL_METADATA, _MODEL_SIGNATURES = 5, 6, 7
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM_CODE, _OPCODE_BUILTIN = 0, 1, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS, _SUBGRAPH_NAME = 0, 1, 2, 3, 4
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
_TENSOR_SPARSITY, _TENSOR_SHAPE_SIGNATURE, _TENSOR_VARIANTS = 6, 7, 9
_QUANTIZATION_MIN, _QUANTIZATION_MAX, _QUANTIZATION_SCALE, _QUANTIZATION_ZERO_POINT = 0, 1, 2, 3
_QUANTIZATION_DETAILS, _QUANTIZATION_DIMENSION = 5, 6
_OPERATOR_OPCODE, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS, _OPERATOR_OPTIONS_TYPE, _OPERATOR_OPTIONS = 0, 1, 2, 3, 4
_OPERATOR_CUSTOM_OPTIONS, _OPERATOR_MUTATING_INPUTS, _OPERATOR_INTERMEDIATES = 5, 7, 8
_OPERATOR_LARGE_CUSTOM_OFFSET, _OPERATOR_LARGE_CUSTOM_SIZE = 9, 10
_OPERATOR_OPTIONS_2_TYPE, _OPERATOR_OPTIONS_2 = 11, 12
_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS, _SIGNATURE_KEY, _SIGNATURE_SUBGRAPH = 0, 1, 2, 4
_TENSOR_MAP_NAME, _TENSOR_MAP_INDEX = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME = 0
_VARIANT_SHAPE = 0

# LiteRT's kernels index their inputs and first output without always counting them (a SLICE with one input or
# no output crashes it). Every operator writes an output except CALL_ONCE and ASSIGN_VARIABLE; the resource
# variable operators take exactly (inputs, outputs): CALL_ONCE, VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE.
_ARITY = {129: (0, 0), 142: (0, 1), 143: (1, 1), 144: (2, 0)}
# (fewest, most) inputs of the builtin operators exports and converters use, from schema.fbs's BuiltinOperator.
_INPUT_COUNTS = {
    **dict.fromkeys((1, 6, 8, 14, 17, 19, 21, 25, 28, 43, 47, 50, 53, 59, 73, 75, 76, 77, 87, 92, 93, 98, 101, 104,
                     111, 114, 117, 150), (1, 1)),  # unary: CAST, RELU, SOFTMAX, SHAPE, QUANTIZE, pooling, ...
    **dict.fromkeys((0, 18, 34, 36, 39, 40, 41, 42, 48, 55, 56, 57, 58, 61, 62, 63, 69, 70, 71, 72, 74, 78, 79, 81,
                     82, 84, 86, 89, 90, 94, 95, 99, 126), (2, 2)),  # binary, reductions, PAD, TOPK_V2, ...
    **dict.fromkeys((60, 64, 65, 96, 122, 123), (3, 3)),  # PADV2, SELECT(_V2), SLICE, RANGE, SCATTER_ND
    **dict.fromkeys((45, 85), (4, 4)),  # STRIDED_SLICE, ONE_HOT
    22: (1, 2),  # RESHAPE: the new shape as an input or as an option
    **dict.fromkeys((3, 4, 9), (2, 3)),  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: the bias may be left out
}

# The builtin options (union BuiltinOptions, then BuiltinOptions2) that hold strings or vectors: {union type:
# {field: bytes per element}}, 1 for a string, from schema.fbs. The interpreter follows these offsets unchecked;
# every other options table holds scalars only. BuiltinOptions2 (StableHLO) vectors are checked as bytes.
_OPTION_OFFSETS = {
    (1, 3): {1: 4, 2: 4}, (1, 8): {5: 1}, (1, 17): {0: 4}, (1, 30): {0: 4}, (1, 111): {0: 1, 1: 1}, (1, 115): {0: 4},
    (2, 2): {0: 1}, (2, 3): {0: 1, 1: 1, 2: 1}, (2, 4): {f: 1 for f in (0, 1, 2, 3, 4, 7, 10, 13, 16)},
    (2, 5): {0: 1, 2: 1, 4: 1, 5: 1}, (2, 6): {0: 1}, (2, 7): {1: 1, 2: 1, 3: 1}, (2, 9): {0: 1},
    (2, 10): {0: 1, 1: 1, 2: 1}, (2, 12): {f: 1 for f in range(5)}, (2, 13): {f: 1 for f in range(5)},
    (2, 16): {0: 1, 1: 1, 2: 1, 4: 1}, (2, 17): {0: 1}, (2, 21): {0: 1, 2: 1}, (2, 23): {0: 1},
}

# Bytes per element of the fixed-size TensorType values; strings, resources, variants and packed int4 vary.
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}
_LAST_TENSOR_TYPE = 31  # beyond what schema.fbs defines with room for its next few; an interpreter refuses the rest
# No tensor of an on-device model holds this much (per sample, as exported with batch 1): a larger shape is damage
# that would make the interpreter try to allocate it.
MAX_TENSOR_BYTES = 1 << 31


class _Structure(_Reader):
    """`_Reader` plus the scalar and vector fields the checks need."""

    def table(self, table, what):
        """`table` once its vtable and inline fields are inside the file (what the interpreter's reads assume)."""
        vtable = table - self.unpack("<i", table)
        vtable_size, table_size = self.unpack("<H", vtable), self.unpack("<H", vtable + 2)
        if vtable_size < 4 or vtable_size % 2 or table + table_size > len(self.data):
            self.fail(f"the table of {what} runs outside the file")
        for entry in range(vtable + 4, vtable + vtable_size, 2):
            if self.unpack("<H", entry) >= max(table_size, 4):
                self.fail(f"a field of {what} lies outside its table")
        return table

    def optional_vector(self, table, field, elem_size):
        """Bounds-check the vector (or string, `elem_size` 1) `field` of `table` where it is present."""
        pos = self.field_pos(table, field)
        if pos is not None:
            self.vector(pos, elem_size)

    def required(self, table, field, what):
        pos = self.field_pos(table, field)
        if pos is None:
            self.fail(f"{what} is missing")
        return pos

    def scalar(self, table, field, fmt, default=0):
        pos = self.field_pos(table, field)
        return default if pos is None else self.unpack(fmt, pos)

    def ints(self, table, field, what, required=True):
        """The int32 vector `field` of `table` as a list (None where it is absent and not `required`)."""
        pos = self.required(table, field, what) if required else self.field_pos(table, field)
        if pos is None:
            return None
        start, length = self.vector(pos, 4)  # bounds-checked: the whole vector lies inside the file
        return list(struct.unpack_from(f"<{length}i", self.data, start))

    def tables(self, table, field, what, required=True):
        if required:
            self.required(table, field, what)
        return [self.table(t, what) for t in self.table_vector(table, field)]

    def vector_length(self, table, field, elem_size):
        pos = self.field_pos(table, field)
        return None if pos is None else self.vector(pos, elem_size)[1]

    def string(self, table, field, what):
        start, length = self.vector(self.required(table, field, what), 1)
        return self.data[start:start + length].decode("utf-8", "replace")


def check_structure(data, source="model"):
    """Raise `FinePruneError` unless every reference in the model's graph stays inside what the file holds.

    Parameters
    ----------
    data : bytes
        The whole `.tflite` file (its identifier already checked).
    source : str
        How to name the file in error messages.
    """
    reader = _Structure(bytes(data), source)
    model = reader.table(reader.indirect(0), "the model")
    reader.optional_vector(model, _MODEL_DESCRIPTION, 1)
    reader.optional_vector(model, _MODEL_METADATA_BUFFER, 4)
    for entry in reader.tables(model, _MODEL_METADATA, "a metadata entry", required=False):
        reader.optional_vector(entry, _METADATA_NAME, 1)
    buffer_sizes = [_buffer_size(reader, b) for b in reader.tables(model, _MODEL_BUFFERS, "the buffers vector")]
    opcodes = []
    for opcode in reader.tables(model, _MODEL_OPERATOR_CODES, "the operator codes vector"):
        reader.optional_vector(opcode, _OPCODE_CUSTOM_CODE, 1)
        opcodes.append(max(reader.scalar(opcode, _OPCODE_DEPRECATED_BUILTIN, "<b"),
                           reader.scalar(opcode, _OPCODE_BUILTIN, "<i")))  # as the interpreter reads it
    subgraphs = reader.tables(model, _MODEL_SUBGRAPHS, "the subgraphs vector")
    if not subgraphs:
        reader.fail("it has no subgraph")
    tensor_counts = [_check_subgraph(reader, s, i, buffer_sizes, opcodes) for i, s in enumerate(subgraphs)]
    for signature in reader.tables(model, _MODEL_SIGNATURES, "a signature", required=False):
        key = reader.string(signature, _SIGNATURE_KEY, "a signature's name")
        index = reader.scalar(signature, _SIGNATURE_SUBGRAPH, "<I")
        if index >= len(subgraphs):
            reader.fail(f"signature {key!r} runs subgraph {index} of {len(subgraphs)}")
        for field in (_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS):
            for entry in reader.tables(signature, field, f"the inputs or outputs of signature {key!r}"):
                name = reader.string(entry, _TENSOR_MAP_NAME, f"a tensor name of signature {key!r}")
                tensor = reader.scalar(entry, _TENSOR_MAP_INDEX, "<I")
                if tensor >= tensor_counts[index]:
                    reader.fail(f"signature {key!r} names tensor {tensor} of {tensor_counts[index]} for {name!r}")


def _buffer_size(reader, buffer):
    """Bytes a buffer holds, its data vector or (models over 2 GB) its offset and size inside the file."""
    length = reader.vector_length(buffer, _BUFFER_DATA, 1)
    if length is not None:
        return length
    offset = reader.scalar(buffer, _BUFFER_OFFSET, "<Q")
    size = reader.scalar(buffer, _BUFFER_SIZE, "<Q")
    if offset > 1 and offset + size > len(reader.data):  # offset 1 marks an empty external buffer
        reader.fail("a buffer runs past the end of the file")
    return size if offset > 1 else 0


def _check_subgraph(reader, subgraph, index, buffer_sizes, opcodes):
    """The number of tensors of a subgraph whose tensors, inputs, outputs and operators all hold."""
    where = f"subgraph {index}"
    reader.optional_vector(subgraph, _SUBGRAPH_NAME, 1)
    tensors = reader.tables(subgraph, _SUBGRAPH_TENSORS, f"the tensors of {where}")
    for number, tensor in enumerate(tensors):
        _check_tensor(reader, tensor, f"tensor {number} of {where}", buffer_sizes)
    count = len(tensors)
    for field, what in ((_SUBGRAPH_INPUTS, "inputs"), (_SUBGRAPH_OUTPUTS, "outputs")):
        for tensor in reader.ints(subgraph, field, f"the {what} of {where}"):
            if not 0 <= tensor < count:
                reader.fail(f"{where} has tensor {tensor} of {count} among its {what}")
    for number, operator in enumerate(reader.tables(subgraph, _SUBGRAPH_OPERATORS, f"the operators of {where}")):
        what = f"operator {number} of {where}"
        code = reader.scalar(operator, _OPERATOR_OPCODE, "<I")
        if code >= len(opcodes):
            reader.fail(f"{what} has operator code {code} of {len(opcodes)}")
        counts = []
        for field, name in ((_OPERATOR_INPUTS, "inputs"), (_OPERATOR_OUTPUTS, "outputs"),
                            (_OPERATOR_INTERMEDIATES, "intermediates")):
            found = reader.ints(operator, field, f"the {name} of {what}", required=field != _OPERATOR_INTERMEDIATES)
            for tensor in found or ():
                if not -1 <= tensor < count:  # -1: an optional input left out
                    reader.fail(f"{what} has tensor {tensor} of {count} among its {name}")
            counts.append(len(found or ()))
        _check_arity(reader, what, opcodes[code], *counts[:2])
        _check_options(reader, operator, what)
    return count


def _check_arity(reader, what, builtin, inputs, outputs):
    fewest, most = _INPUT_COUNTS.get(builtin, (inputs, inputs))
    expected = _ARITY.get(builtin, (min(max(inputs, fewest), most), max(outputs, 1)))
    if (inputs, outputs) != expected:
        reader.fail(f"{what} (builtin operator {builtin}) has {inputs} inputs and {outputs} outputs; "
                    f"expected {expected[0]} and {expected[1]}")


def _check_options(reader, operator, what):
    """The operator's options tables, the offsets inside them, and its custom options, inside the file."""
    for union, type_field, field in ((1, _OPERATOR_OPTIONS_TYPE, _OPERATOR_OPTIONS),
                                     (2, _OPERATOR_OPTIONS_2_TYPE, _OPERATOR_OPTIONS_2)):
        kind, pos = reader.scalar(operator, type_field, "<B"), reader.field_pos(operator, field)
        if pos is None:
            continue
        options = reader.table(reader.indirect(pos), f"the options of {what}")
        for offset_field, elem_size in _OPTION_OFFSETS.get((union, kind), {}).items():
            reader.optional_vector(options, offset_field, elem_size)
    reader.optional_vector(operator, _OPERATOR_CUSTOM_OPTIONS, 1)
    reader.optional_vector(operator, _OPERATOR_MUTATING_INPUTS, 1)
    offset = reader.scalar(operator, _OPERATOR_LARGE_CUSTOM_OFFSET, "<Q")
    if offset > 1 and offset + reader.scalar(operator, _OPERATOR_LARGE_CUSTOM_SIZE, "<Q") > len(reader.data):
        reader.fail(f"the custom options of {what} run past the end of the file")


def _check_tensor(reader, tensor, what, buffer_sizes):
    reader.optional_vector(tensor, _TENSOR_NAME, 1)
    if reader.field_pos(tensor, _TENSOR_SPARSITY) is not None:
        reader.fail(f"{what} is stored sparse, which no export writes")
    for variant in reader.tables(tensor, _TENSOR_VARIANTS, f"the variants of {what}", required=False):
        reader.optional_vector(variant, _VARIANT_SHAPE, 4)
    shape = reader.ints(tensor, _TENSOR_SHAPE, f"the shape of {what}", required=False) or []
    if any(dim < 0 for dim in shape):
        reader.fail(f"{what} has shape {shape}")
    signature = reader.ints(tensor, _TENSOR_SHAPE_SIGNATURE, f"the shape signature of {what}", required=False)
    if signature is not None and (len(signature) != len(shape) or any(dim < -1 for dim in signature)):
        reader.fail(f"{what} has shape signature {signature} for shape {shape}")
    kind = reader.scalar(tensor, _TENSOR_TYPE, "<b")
    if not 0 <= kind <= _LAST_TENSOR_TYPE:
        reader.fail(f"{what} has type {kind}")
    elements = 1
    for dim in shape:
        elements *= dim
    if elements * _ELEMENT_BYTES.get(kind, 1) > MAX_TENSOR_BYTES:
        reader.fail(f"{what} has shape {shape}, over {MAX_TENSOR_BYTES >> 30} GiB")
    buffer = reader.scalar(tensor, _TENSOR_BUFFER, "<I")
    if buffer >= len(buffer_sizes):
        reader.fail(f"{what} reads buffer {buffer} of {len(buffer_sizes)}")
    held = buffer_sizes[buffer]
    if held and kind in _ELEMENT_BYTES and held != elements * _ELEMENT_BYTES[kind]:
        reader.fail(f"{what} has shape {shape} but its buffer holds {held} bytes")
    quantization = reader.field_pos(tensor, _TENSOR_QUANTIZATION)
    if quantization is not None:
        _check_quantization(reader, reader.table(reader.indirect(quantization), f"the quantization of {what}"),
                            what, shape)


def _check_quantization(reader, table, what, shape):
    reader.optional_vector(table, _QUANTIZATION_MIN, 4)
    reader.optional_vector(table, _QUANTIZATION_MAX, 4)
    details = reader.field_pos(table, _QUANTIZATION_DETAILS)
    if details is not None:
        reader.table(reader.indirect(details), f"the quantization details of {what}")
    scales = reader.vector_length(table, _QUANTIZATION_SCALE, 4)
    zero_points = reader.vector_length(table, _QUANTIZATION_ZERO_POINT, 8)
    if scales is not None and zero_points is not None and zero_points != scales:
        reader.fail(f"{what} has {scales} quantization scales and {zero_points} zero points")
    axis = reader.scalar(table, _QUANTIZATION_DIMENSION, "<i")
    if scales and scales > 1 and not (0 <= axis < len(shape) and shape[axis] == scales):
        reader.fail(f"{what} has {scales} quantization scales along axis {axis} of shape {shape}")
