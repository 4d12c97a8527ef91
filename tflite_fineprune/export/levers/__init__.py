"""The levers' export side, one class a lever, in the order of the runtime table (`tflite_fineprune.levers`).

Adding a lever: its runtime module in `tflite_fineprune/levers/` and a line
in `LEVERS` there; its `ExportLever` subclass here and a line in
`EXPORT_LEVERS` below, at the same position. The order is part of the file
format (variables are created, hooks run and signatures are added in it).
"""

from ... import levers as runtime
from .base import ExportLever
from .class_exclusion import ClassExclusion
from .compensation import MeanCompensation
from .dormant import DormantPruning
from .magnitude import MagnitudePruning
from .normalization import NormalizationShift
from .priors import PriorCorrection
from .prototypes import ClassifierPrototypes
from .rate import RatePruning

EXPORT_LEVERS = (
    RatePruning,
    MeanCompensation,
    PriorCorrection,
    ClassExclusion,
    DormantPruning,
    NormalizationShift,
    ClassifierPrototypes,
    MagnitudePruning,
)

assert [cls.lever.name for cls in EXPORT_LEVERS] == [lever.name for lever in runtime.LEVERS], \
    "export/levers and tflite_fineprune/levers list the levers in different orders"


def configure(graph, options, input_dtype):
    """Lever name → the configuration of each lever the export carries (`ExportLever.configure`), in order."""
    configs = {}
    for cls in EXPORT_LEVERS:
        config = cls.configure(graph, options, input_dtype)
        if config is not None:
            configs[cls.lever.name] = config
    return configs


__all__ = ["EXPORT_LEVERS", "ExportLever", "configure"]
