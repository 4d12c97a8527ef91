"""Export a Keras 3 classifier to one self-describing, personalizable `.tflite`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .exporter import ExportReport, export_model  # noqa: E402

__all__ = ["ExportReport", "export_model"]
