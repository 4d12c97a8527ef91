"""Attach named metadata buffers to a converted TFLite flatbuffer."""

from ..tflite.compaction import STEPS, compact_model
from ..tflite.schema import read_model, set_metadata, write_model


def add_metadata(model_bytes, name, blob, compact_steps=()):
    """Return `model_bytes` with metadata `name` set to `blob` (replacing any earlier one),
    after applying `compact_steps` (tflite/compaction.py; `STEPS` for all)."""
    model = read_model(model_bytes)
    if compact_steps:
        compact_model(model, compact_steps)
    set_metadata(model, name, blob)
    return write_model(model, len(model_bytes) + len(blob) + 1024)


__all__ = ["STEPS", "add_metadata"]
