"""Tiny TFLite models built op by op with the schema's object API: no TensorFlow, no conversion.

`Tiny` appends tensors and builtin ops to one subgraph and finishes it as a
`ModelT` with an `infer` signature; `run` executes a model's bytes in LiteRT's
interpreter, so the rewrites are checked against what the runtime computes.
"""

import numpy as np

from tflite_fineprune.tflite.schema import load_schema, write_model
from tflite_fineprune.tflite.types import NUMPY_TYPES

_TYPES = {np.dtype(v): k for k, v in NUMPY_TYPES.items()}
RESOURCE = 20  # TensorType of a variable handle


class Tiny:
    def __init__(self):
        self.schema = load_schema()
        self.model = self.schema.ModelT()
        self.model.version = 3
        self.model.buffers = [self.schema.BufferT()]
        self.model.operatorCodes = []
        self.sub = self.schema.SubGraphT()
        self.sub.tensors, self.sub.operators = [], []

    def tensor(self, shape, data=None, dtype=np.float32, name=None, tensor_type=None):
        """A new tensor (a constant when `data` is given); returns its index."""
        t = self.schema.TensorT()
        t.shape = np.array(shape, np.int32)
        t.type = _TYPES[np.dtype(dtype)] if tensor_type is None else tensor_type
        t.name = (name or f"t{len(self.sub.tensors)}").encode()
        t.buffer = 0
        if data is not None:
            buffer = self.schema.BufferT()
            buffer.data = np.frombuffer(np.asarray(data, dtype).tobytes(), np.uint8)
            self.model.buffers.append(buffer)
            t.buffer = len(self.model.buffers) - 1
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1

    def const(self, values, dtype=np.float32):
        values = np.asarray(values, dtype)
        return self.tensor(values.shape, values, dtype)

    def op(self, name, inputs, outputs, options=None, version=1):
        """Append builtin op `name`; `options` is a `...OptionsT` whose type is named after it."""
        code = getattr(self.schema.BuiltinOperator, name)
        codes = self.model.operatorCodes
        index = next((i for i, c in enumerate(codes) if c.builtinCode == code), None)
        if index is None:
            c = self.schema.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            codes.append(c)
            index = len(codes) - 1
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, list(inputs), list(outputs)
        if options is not None:
            op.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.sub.operators.append(op)
        return op

    def fully_connected(self, x, weights, bias, activation=0):
        w, b = self.const(weights), self.const(bias)
        out = self.tensor([self.sub.tensors[x].shape[0], len(bias)])
        options = self.schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = activation
        self.op("FULLY_CONNECTED", [x, w, b], [out], options)
        return out

    def binary(self, name, a, b):
        out = self.tensor(self.sub.tensors[a].shape)
        self.op(name, [a, b], [out], getattr(self.schema, name.title().replace("_", "") + "OptionsT")())
        return out

    def finish(self, inputs, outputs):
        """The `ModelT`, with one `infer` signature over `inputs` → `outputs`."""
        self.sub.inputs, self.sub.outputs = list(inputs), list(outputs)
        self.model.subgraphs = [self.sub]
        signature = self.schema.SignatureDefT()
        signature.signatureKey = b"infer"
        signature.subgraphIndex = 0
        signature.inputs = [self._entry(t, f"x{k}") for k, t in enumerate(inputs)]
        signature.outputs = [self._entry(t, f"y{k}") for k, t in enumerate(outputs)]
        self.model.signatureDefs = [signature]
        return self.model

    def _entry(self, t, name):
        entry = self.schema.TensorMapT()
        entry.name, entry.tensorIndex = name.encode(), t
        return entry


def run(model, *inputs):
    """The `infer` outputs of a `ModelT` (serialized) or `.tflite` bytes on `inputs`, through LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    data = model if isinstance(model, bytes) else write_model(model)
    runner = Interpreter(model_content=data).get_signature_runner("infer")
    outputs = runner(**{f"x{k}": np.asarray(x, np.float32) for k, x in enumerate(inputs)})
    return [outputs[k] for k in sorted(outputs)]
