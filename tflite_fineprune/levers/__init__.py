"""The levers, one folder each, found through one table (`LEVERS`) for both sides.

A lever's folder, `levers/<name>/`, holds:
- `__init__.py`: its descriptor `LEVER` (a `Lever`: signatures, state block,
  export option and flag, the metadata fields it owns), its runtime
  behaviour (whether an export carries it, how `set_state` restores its
  block, what `slim` freezes) and its `Personalizer` methods as a mixin;
- `graph.py`: its graph side, an `ExportLever` (`GRAPH`) that builds its
  variables and signatures. It imports TensorFlow, so only `export/` loads
  it, through `Lever.graph_side` (export/levers/__init__.py);
- any helper only its graph side needs (magnitude/outgoing_norms.py).

The state codec (`state.py`), the metadata checks, the export options' flags,
`Personalizer`, `slim` and the export read this table instead of naming
levers; the export records each block's layout in the model's metadata
(`layout.py`), which the phone's codec and the recorded session read.

Order matters and is part of the file formats: a state file carries the blocks
in this order, and an export adds the signatures in this order. A new lever
goes at the end (its block, if any, after the others; its `since` the new
state format version). docs/architecture.md ("Add a lever") lists the files
a new lever touches.
"""

from __future__ import annotations

from . import activity, class_exclusion, compensation, dormant, magnitude, normalization, priors, prototypes
from .base import ExportFlag, Lever, MetadataChecks, StateBlock
from .layout import describe_blocks

LEVERS: tuple = (
    activity.LEVER,
    compensation.LEVER,
    priors.LEVER,
    class_exclusion.LEVER,
    dormant.LEVER,
    normalization.LEVER,
    prototypes.LEVER,
    magnitude.LEVER,
)

BY_NAME = {lever.name: lever for lever in LEVERS}

# The `Personalizer` methods of every lever (runtime.py makes them its bases).
PERSONALIZER_METHODS: tuple = tuple(lever.methods for lever in LEVERS if lever.methods is not None)


def blocks() -> tuple:
    """`(lever name, StateBlock)` of every lever that keeps a state block, in file order."""
    return tuple((lever.name, lever.block) for lever in LEVERS if lever.block is not None)


def used(metadata) -> tuple:
    """The levers an export carries."""
    return tuple(lever for lever in LEVERS if lever.in_model(metadata))


def block_shapes(metadata) -> dict:
    """Lever name → block shape, for the levers with a state block that this export carries (`decode_state`)."""
    return {lever.name: lever.block_shape(metadata) for lever in used(metadata) if lever.block is not None}


def describe(metadata) -> tuple:
    """The state-block layout an export with this metadata records (`ModelMetadata.state_blocks`)."""
    return describe_blocks(used(metadata), metadata)


def described_blocks(metadata) -> dict:
    """Lever name → its block's description from the model's metadata; empty for a model exported before
    the metadata carried it (readers then use the lever table)."""
    return {entry["lever"]: entry for entry in getattr(metadata, "state_blocks", ()) or ()}


def export_flags() -> dict:
    """`ExportOptions` field → the `ExportFlag` of each lever option that has one, in table order."""
    return {lever.option: lever.flag for lever in LEVERS if lever.flag is not None}


__all__ = ["BY_NAME", "ExportFlag", "LEVERS", "Lever", "MetadataChecks", "PERSONALIZER_METHODS", "StateBlock",
           "block_shapes", "blocks", "describe", "described_blocks", "export_flags", "used"]
