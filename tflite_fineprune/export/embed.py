"""Attach named metadata buffers to a converted TFLite flatbuffer."""

import importlib

import numpy as np


def _schema():
    # TF ships the generated FlatBuffers schema; LiteRT carries the same module.
    for name in ("tensorflow.lite.python.schema_py_generated", "ai_edge_litert.schema_py_generated"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("no TFLite flatbuffer schema module found (install tensorflow or ai-edge-litert)")


def add_metadata(model_bytes, name, blob):
    """Return `model_bytes` with metadata `name` set to `blob` (replacing any earlier one)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(blob, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (name, name.encode())] + [entry]
    builder = flatbuffers.Builder(len(model_bytes) + len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
