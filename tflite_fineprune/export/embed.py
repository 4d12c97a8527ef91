"""Attach named metadata buffers to a converted TFLite flatbuffer."""

from ..tflite_schema import read_model, set_metadata, write_model
from .compact import STEPS, compact


def add_metadata(model_bytes, name, blob, compact_steps=()):
    """Return `model_bytes` with metadata `name` set to `blob` (replacing any earlier one),
    after applying `compact_steps` (export/compact.py; `STEPS` for all)."""
    model = read_model(model_bytes)
    if compact_steps:
        compact(model, compact_steps)
    set_metadata(model, name, blob)
    return write_model(model, len(model_bytes) + len(blob) + 1024)


__all__ = ["STEPS", "add_metadata"]
