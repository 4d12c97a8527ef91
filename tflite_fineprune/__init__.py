"""tflite-fineprune: label-free, on-device personalization of TFLite models by activity pruning.

This module is the public API. The runtime (`Personalizer`) needs only numpy
and a TFLite interpreter; `export_model`, `ExportReport`, `register_layer` and
`LayerRole` need TensorFlow and are imported on first use (so `import
tflite_fineprune` stays light on a device).
"""

from .errors import FinePruneError, InputError, ModelError, SlimError, StateError
from .export.options import ExportOptions
from .metadata import ModelMetadata, UnitGroup, read_model_metadata
from .auto_recipe import AutoRule, PersonalizationReport
from .runtime import Personalizer
from .sparsity import Sparsity
from .state import State

__version__ = "0.1.0"

# Public name → (module, attribute), imported on first use.
_LAZY = {
    "export_model": ("tflite_fineprune.export.exporter", "export_model"),
    "ExportReport": ("tflite_fineprune.export.exporter", "ExportReport"),
    "register_layer": ("tflite_fineprune.export.layer_registry", "register"),
    "LayerRole": ("tflite_fineprune.export.layer_registry", "Role"),
    "slim_model": ("tflite_fineprune.slim", "slim_model"),
    "SlimReport": ("tflite_fineprune.slim", "SlimReport"),
    "evaluate_population": ("tflite_fineprune.population", "evaluate_population"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tflite_fineprune' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["AutoRule", "ExportOptions", "ExportReport", "FinePruneError", "InputError", "LayerRole", "ModelError",
           "ModelMetadata", "PersonalizationReport", "Personalizer", "SlimError", "SlimReport", "Sparsity", "State",
           "StateError", "UnitGroup", "evaluate_population", "export_model", "read_model_metadata", "register_layer",
           "slim_model", "__version__"]
