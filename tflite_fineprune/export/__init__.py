"""Export a Keras 3 classifier to one self-describing, personalizable `.tflite`.

`ExportOptions` imports no TensorFlow (the commands parse their flags with it
first, before they quiet TensorFlow); `export_model` and `ExportReport` import
it on first use.
"""

from .options import ExportOptions


def __getattr__(name):
    if name in ("ExportReport", "export_model"):
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'tflite_fineprune.export' has no attribute {name!r}")


__all__ = ["ExportOptions", "ExportReport", "export_model"]
