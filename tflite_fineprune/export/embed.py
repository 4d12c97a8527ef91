"""Attach named metadata buffers to a converted TFLite flatbuffer."""

from ..tflite_schema import read_model, set_metadata, write_model


def add_metadata(model_bytes, name, blob):
    """Return `model_bytes` with metadata `name` set to `blob` (replacing any earlier one)."""
    model = read_model(model_bytes)
    set_metadata(model, name, blob)
    return write_model(model, len(model_bytes) + len(blob) + 1024)
