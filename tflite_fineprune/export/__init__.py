"""Export a Keras 3 classifier to one self-describing, personalizable `.tflite`.

`ExportOptions` imports no TensorFlow (the commands parse their flags with it
first); `export_model` and `ExportReport` import it on first use.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .options import ExportOptions  # noqa: E402


def __getattr__(name):
    if name in ("ExportReport", "export_model"):
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'tflite_fineprune.export' has no attribute {name!r}")


__all__ = ["ExportOptions", "ExportReport", "export_model"]
