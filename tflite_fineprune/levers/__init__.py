"""The levers, one room each, found through one table (`LEVERS`).

A lever's runtime side is a module here (its state block, metadata fields,
`Personalizer` methods, how `set_state` restores it); its export side is the
module of the same name in `export/levers/`, which builds its variables and
signatures. The state codec (`state.py`), the metadata checks and
`Personalizer` read the table instead of naming levers.

Order matters and is part of the file formats: a state file carries the blocks
in this order, and an export adds the signatures in this order. A new lever
goes at the end (its block, if any, after the others; its `since` the new
state format version).

Adding one, e.g. a pruning score accumulated by `collect`:
- here, `levers/score.py`: a `Lever` with `signatures`, a `StateBlock` (next
  flag bit, `since` = next version, `lengths` from the file's unit count),
  `in_model`, `feed` and `slim_variables`, and its `Personalizer` methods as a
  mixin class; a line in `LEVERS`; its field in `State` and its names in
  `signatures.py`;
- `export/levers/score.py`: an `ExportLever` whose `configure` reads its
  `ExportOptions` field, whose `__init__` creates its variable (its constants,
  such as outgoing weight norms, from `parts`), `observe_group` computes the
  per-group score, `collect` adds it, `reset`/`state` clear and return it,
  `signatures` adds its set signature; a line in `EXPORT_LEVERS`;
- its fields in `state.pyi` and its methods in `runtime.pyi` (tests/test_stubs.py says so);
- nothing on the phone's state side: the export records the block's layout in the metadata (`layout.py`), which
  the Kotlin codec reads.
"""

from __future__ import annotations

from . import class_exclusion, compensation, dormant, magnitude, normalization, priors, prototypes, rate
from .base import Lever, StateBlock
from .layout import describe_blocks

LEVERS: tuple = (
    rate.LEVER,
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


__all__ = ["BY_NAME", "LEVERS", "Lever", "PERSONALIZER_METHODS", "StateBlock", "block_shapes", "blocks", "describe",
           "described_blocks", "used"]
