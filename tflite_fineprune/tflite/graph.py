"""A mutable view of one subgraph of a TFLite `ModelT`: op names, constants as numpy, new constants, users."""

import numpy as np

from ..errors import SlimError
from .types import FLOAT32, INT8, NUMPY_TYPES, along, quantization_parameters, symmetric_scales


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
            dtype = NUMPY_TYPES.get(tensor.type)
            if data is None or len(data) == 0 or dtype is None or tensor.isVariable:
                return None
            raw = np.asarray(data, np.uint8).tobytes()
            self._consts[t] = np.frombuffer(raw, dtype).reshape(self.shape(t))
        return self._consts[t]

    def add_buffer(self, array):
        """Append a buffer holding `array`'s bytes; returns its index."""
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def make_const(self, t, array):
        """Turn tensor `t` (e.g. a variable read) into a constant holding `array`."""
        tensor = self.sub.tensors[t]
        array = np.asarray(array, NUMPY_TYPES[tensor.type])
        tensor.buffer = self.add_buffer(array)
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
        array = np.asarray(array, NUMPY_TYPES[tensor.type])
        tensor.buffer = self.add_buffer(array)
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
            raise SlimError(f"slim handles float32 weights and symmetric int8 weights (dynamic range) only; "
                            f"{what} (tensor {t}) has type {self._type_name(tensor.type)}")
        return values.astype(np.float64) * along(scales, tensor.quantization.quantizedDimension, values.ndim)

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
        divisors = along(np.where(scales == 0, 1.0, scales), axis, values.ndim)  # a zero scale holds zeros
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
            raise SlimError(f"slim handles float32 weights only; {what} (tensor {t}) has type "
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
