"""The generated TFLite FlatBuffers schema (object API), found without TensorFlow.

LiteRT (`ai_edge_litert`) ships it; so does TensorFlow. tflite-runtime does
not, and the `tflite` PyPI package has only the reader API (no `ModelT`); the
generated object API runs to thousands of lines, so it is not copied here. In
a tflite-runtime-only environment slimming fails with a message saying what to
install (LiteRT beside tflite-runtime, numpy kept below 2); the slim *files*
run there.
"""

import importlib
import importlib.util
import struct

import numpy as np

from ..errors import FinePruneError, ModelError

_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


def load_schema():
    """The schema module, preferring LiteRT's (no TensorFlow import)."""
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    # Installed alone, LiteRT's newest ml_dtypes brings numpy 2, which tflite-runtime 2.14 cannot run with.
    keep_numpy = '"numpy<2" ' if importlib.util.find_spec("tflite_runtime") is not None else ""
    raise FinePruneError(
        "rewriting a .tflite needs the TFLite FlatBuffers schema, which ships with LiteRT: "
        f"pip install {keep_numpy}ai-edge-litert flatbuffers (tflite-runtime does not include it)"
    )


# What the generated readers raise on bytes that are not what the schema says: they follow offsets unchecked.
PARSE_ERRORS = (struct.error, ValueError, TypeError, IndexError, AttributeError, KeyError, OverflowError,
                RecursionError, UnicodeDecodeError)


def read_model(data, source="model"):
    """A mutable `ModelT` of a `.tflite` file's bytes; `FinePruneError` naming `source` where they do not parse."""
    schema = load_schema()
    try:
        return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(data), 0))
    except PARSE_ERRORS as exc:
        raise ModelError(f"{source} is not a valid TFLite model: the FlatBuffers schema cannot read it "
                         f"({type(exc).__name__}: {exc}); it may be truncated or corrupted") from exc


def write_model(model, size_hint=1 << 20):
    """Serialize a `ModelT` to `.tflite` bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def set_metadata(model, name, blob):
    """Set metadata entry `name` of a `ModelT` to the bytes `blob`, replacing any earlier entry of that name."""
    schema = load_schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(blob, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (name, name.encode())] + [entry]
