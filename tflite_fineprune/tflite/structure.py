"""The graph structure of a `.tflite` checked before any other reader, or an interpreter, sees the bytes.

The SHA-256 seal proves only that a file is what its own metadata says; anyone can seal a crafted file. The
interpreter's FlatBuffers verifier checks that offsets stay inside the file, not what they mean: an operator
without its inputs vector, a tensor index past the end, a constant whose buffer is shorter than its shape
crash LiteRT's C++ (a segfault, not an exception), and the schema's Python readers fail with `struct.error`,
`IndexError`, ... . `check_structure` walks every subgraph, tensor, operator, buffer and signature with the
bounds-checked reader of `flatbuffer` (no schema package needed, so it runs under tflite-runtime too) and raises
`FinePruneError` naming the first thing that does not hold.
"""

from .flatbuffer import _Reader

# Field indices in tensorflow/lite/schema/schema.fbs.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_SIGNATURES = 1, 2, 4, 7
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS = 0, 1, 2, 3
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_QUANTIZATION, _TENSOR_SPARSITY = 0, 1, 2, 4, 6
_TENSOR_SHAPE_SIGNATURE = 7
_QUANTIZATION_SCALE, _QUANTIZATION_ZERO_POINT, _QUANTIZATION_DIMENSION = 2, 3, 6
_OPERATOR_OPCODE, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS, _OPERATOR_INTERMEDIATES = 0, 1, 2, 8
_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS, _SIGNATURE_KEY, _SIGNATURE_SUBGRAPH = 0, 1, 2, 4
_TENSOR_MAP_NAME, _TENSOR_MAP_INDEX = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2

# Bytes per element of the fixed-size TensorType values; strings, resources, variants and packed int4 vary.
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}
_LAST_TENSOR_TYPE = 31  # beyond what schema.fbs defines with room for its next few; an interpreter refuses the rest
# No tensor of an on-device model holds this much (per sample, as exported with batch 1): a larger shape is damage
# that would make the interpreter try to allocate it.
MAX_TENSOR_BYTES = 1 << 31


class _Structure(_Reader):
    """`_Reader` plus the scalar and vector fields the checks need."""

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
        start, length = self.vector(pos, 4)
        return [self.unpack("<i", start + 4 * i) for i in range(length)]

    def tables(self, table, field, what):
        self.required(table, field, what)
        return self.table_vector(table, field)

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
    model = reader.indirect(0)
    buffer_sizes = [_buffer_size(reader, b) for b in reader.tables(model, _MODEL_BUFFERS, "the buffers vector")]
    opcodes = len(reader.tables(model, _MODEL_OPERATOR_CODES, "the operator codes vector"))
    subgraphs = reader.tables(model, _MODEL_SUBGRAPHS, "the subgraphs vector")
    if not subgraphs:
        reader.fail("it has no subgraph")
    tensor_counts = [_check_subgraph(reader, s, i, buffer_sizes, opcodes) for i, s in enumerate(subgraphs)]
    for signature in reader.table_vector(model, _MODEL_SIGNATURES):
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
        if code >= opcodes:
            reader.fail(f"{what} has operator code {code} of {opcodes}")
        for field, name in ((_OPERATOR_INPUTS, "inputs"), (_OPERATOR_OUTPUTS, "outputs"),
                            (_OPERATOR_INTERMEDIATES, "intermediates")):
            found = reader.ints(operator, field, f"the {name} of {what}", required=field != _OPERATOR_INTERMEDIATES)
            for tensor in found or ():
                if not -1 <= tensor < count:  # -1: an optional input left out
                    reader.fail(f"{what} has tensor {tensor} of {count} among its {name}")
    return count


def _check_tensor(reader, tensor, what, buffer_sizes):
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
    if (held and kind in _ELEMENT_BYTES and reader.field_pos(tensor, _TENSOR_SPARSITY) is None
            and held != elements * _ELEMENT_BYTES[kind]):
        reader.fail(f"{what} has shape {shape} but its buffer holds {held} bytes")
    quantization = reader.field_pos(tensor, _TENSOR_QUANTIZATION)
    if quantization is not None:
        _check_quantization(reader, reader.indirect(quantization), what, shape)


def _check_quantization(reader, table, what, shape):
    scales = reader.vector_length(table, _QUANTIZATION_SCALE, 4)
    zero_points = reader.vector_length(table, _QUANTIZATION_ZERO_POINT, 8)
    if scales is not None and zero_points is not None and zero_points != scales:
        reader.fail(f"{what} has {scales} quantization scales and {zero_points} zero points")
    axis = reader.scalar(table, _QUANTIZATION_DIMENSION, "<i")
    if scales and scales > 1 and not (0 <= axis < len(shape) and shape[axis] == scales):
        reader.fail(f"{what} has {scales} quantization scales along axis {axis} of shape {shape}")
