"""The levers' graph sides, in the order of the one lever table (`tflite_fineprune.levers.LEVERS`).

Each lever's graph side is the `ExportLever` in the `graph.py` of its folder
(`tflite_fineprune/levers/<name>/`); the table's descriptors find it
(`Lever.graph_side`), so a new lever adds no line here. They are imported
when the export loads, never by the runtime (they import TensorFlow). The
order is part of the file format (variables are created, hooks run and
signatures are added in it).
"""

from ... import levers as runtime
from .base import ExportLever

EXPORT_LEVERS = tuple(lever.graph_side() for lever in runtime.LEVERS)


def configure(graph, options, input_dtype):
    """Lever name → the configuration of each lever the export carries (`ExportLever.configure`), in order."""
    configs = {}
    for cls in EXPORT_LEVERS:
        config = cls.configure(graph, options, input_dtype)
        if config is not None:
            configs[cls.lever.name] = config
    return configs


__all__ = ["EXPORT_LEVERS", "ExportLever", "configure"]
