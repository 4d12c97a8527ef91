"""The generated TFLite FlatBuffers schema (object API), found without TensorFlow.

LiteRT (`ai_edge_litert`) ships it; so does TensorFlow. tflite-runtime does
not, and the `tflite` PyPI package has only the reader API (no `ModelT`), so
in a tflite-runtime-only environment slimming fails with a message saying what
to install; the slim *files* run there.
"""

import importlib

import numpy as np

from ..errors import FinePruneError

_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


def load_schema():
    """The schema module, preferring LiteRT's (no TensorFlow import)."""
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise FinePruneError(
        "rewriting a .tflite needs the TFLite FlatBuffers schema, which ships with LiteRT: "
        "pip install ai-edge-litert flatbuffers (tflite-runtime does not include it)"
    )


def read_model(data):
    """A mutable `ModelT` of a `.tflite` file's bytes."""
    schema = load_schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(data), 0))


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
