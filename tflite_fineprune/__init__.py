"""tflite-fineprune: label-free, on-device personalization of TFLite models by activity pruning.

The runtime (`Personalizer`) needs only numpy and a TFLite interpreter;
`export_model` needs TensorFlow and is imported on first use.
"""

from .errors import FinePruneError
from .metadata import ModelMetadata, UnitGroup, read_model_metadata
from .recipe import AutoRule, PersonalizationReport
from .runtime import Personalizer
from .sparsity import Sparsity
from .state import State

__version__ = "0.1.0"


def export_model(model, path, **options):
    """Export a Keras 3 model; see `tflite_fineprune.export.export_model` (imports TensorFlow)."""
    from .export import export_model as _export

    return _export(model, path, **options)


__all__ = ["AutoRule", "FinePruneError", "ModelMetadata", "PersonalizationReport", "Personalizer", "Sparsity", "State", "UnitGroup",
           "export_model", "read_model_metadata", "__version__"]
