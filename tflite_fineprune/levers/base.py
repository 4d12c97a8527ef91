"""What every lever is: one descriptor (`Lever`) naming its signatures, state block, export option and metadata
fields, and the runtime behaviour that goes with them.

A lever is one way of personalizing a model (prune units by activity, shift
the normalization statistics, ...) and lives in one folder, `levers/<name>/`:
its `__init__.py` holds the descriptor (`LEVER`, an instance of a `Lever`
subclass) and its `Personalizer` methods; its `graph.py` holds the graph side
(an `ExportLever`, found through `Lever.graph_side`), which imports TensorFlow
and which only `export/` loads. This side knows what the `.tflite` offers:
whether an export carries the lever (from the metadata), the vectors it keeps
in a state file, how `set_state` restores them, and the methods it adds to
`Personalizer`. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Optional, Protocol, Sequence

import numpy as np

from ..errors import FinePruneError, StateError


@dataclasses.dataclass(frozen=True)
class StateBlock:
    """The float32 vectors a lever appends to a state file (docs/state_format.md).

    Attributes
    ----------
    flag : int
        The header flag bit that says the block follows.
    fields : tuple of str
        `State` attributes in file order; they are also the names of the
        vectors in the `get_state` and set signatures.
    since : int
        The first state format version that can carry the block. A file of
        an older version lacks it and still loads: the model keeps what it
        was exported with for this lever.
    what : str
        How messages name it ("mean-compensation").
    lengths : callable
        `lengths(units, shape)` → the float count of each field, from the
        file's unit count and the model's `Lever.block_shape`.
    """

    flag: int
    fields: tuple
    since: int
    what: str
    lengths: Callable[[int, tuple], tuple]

    def check(self, values: dict, source: str) -> None:
        """Refuse decoded values that cannot be (beyond finiteness, which the codec checks)."""


class MetadataChecks(Protocol):
    """What `Lever.validate_metadata` may use to check the metadata fields it owns.

    Each check raises `FinePruneError` saying which field, what it holds and
    what was expected (`metadata.MetadataChecker` implements it).
    """

    def fail(self, field: str, value, expected: str) -> None:
        """Refuse `field` holding `value`, saying what was `expected`."""

    def is_int(self, value) -> bool:
        """Whether `value` is an int (a bool is not)."""

    def integer(self, value, field: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> None:
        """Refuse anything but an integer in [`minimum`, `maximum`]."""

    def number(self, value, field: str, minimum: Optional[float] = None) -> None:
        """Refuse anything but a finite number ≥ `minimum`."""

    def text(self, value, field: str, pattern: Optional[str] = None, allow_empty: bool = False) -> None:
        """Refuse anything but a string (non-empty unless `allow_empty`, matching `pattern` if given)."""

    def choice(self, value, field: str, choices: Sequence[str]) -> None:
        """Refuse a value not in `choices`."""


@dataclasses.dataclass(frozen=True)
class ExportFlag:
    """The command-line flag of a lever's export option (`export/options.py` adds it to every export command).

    Attributes
    ----------
    flag : str
        The flag, e.g. "--no-magnitude-pruning".
    keywords : dict
        Its `argparse` keywords (`action`, `choices`, `help`, ...); the default is `ExportOptions`' own.
    """

    flag: str
    keywords: dict


class Lever:
    """A lever's descriptor and runtime side; subclasses set the attributes and override what they use.

    Attributes
    ----------
    name : str
        Keys the table (`BY_NAME`), the codec's `blocks` and the metadata's `state_blocks`.
    signatures : tuple of str
        The signatures its export adds, in the order it adds them.
    block : StateBlock or None
        Its state block, if it keeps one.
    set_signature : str or None
        The signature that restores the block.
    methods : type or None
        A mixin class of `Personalizer` methods.
    option : str or None
        The `ExportOptions` field that asks for it; None when every export that can carry it does.
    flag : ExportFlag or None
        The command-line flag of `option`, if it has one.
    metadata_fields : tuple of str
        The `ModelMetadata` fields it owns (and checks in `validate_metadata`).
    graph : str
        The module of its folder that holds its graph side (`graph_side`).
    """

    name: str = ""
    signatures: tuple = ()
    block: Optional[StateBlock] = None
    set_signature: Optional[str] = None
    methods: Optional[type] = None
    option: Optional[str] = None
    flag: Optional[ExportFlag] = None
    metadata_fields: tuple = ()
    graph: str = "graph"

    def graph_side(self) -> type:
        """The lever's `ExportLever` class (`GRAPH` of its folder's graph module): imports TensorFlow, so only
        the export calls it."""
        return importlib.import_module(f"{type(self).__module__}.{self.graph}").GRAPH

    def in_model(self, metadata) -> bool:
        """Whether an export with this metadata carries the lever."""
        return all(name in metadata.signatures for name in self.signatures)

    def block_shape(self, metadata) -> tuple:
        """The model dimensions the block's lengths depend on (`StateBlock.lengths`' `shape`)."""
        return ()

    def feed(self, metadata, state) -> Optional[dict]:
        """Checked inputs of `set_signature` for `state`; None when the state lacks the block (reset to trained)."""
        return None

    def as_held(self, metadata, state, trained: Callable[[], dict]) -> dict:
        """The lever's block as the model holds it after `set_state` (what `get_state` then returns): `feed`'s
        checked vectors, or, where the state lacks the block, the values the model keeps (`trained()`: its
        variables' initial values, e.g. the trained BatchNorm statistics for a version-1 file)."""
        if self.block is None:
            return {}
        feed = self.feed(metadata, state)
        source = trained() if feed is None else feed
        return {field: np.ravel(np.asarray(source[field], np.float32)) for field in self.block.fields}

    def slim_variables(self, metadata, state, masks) -> dict:
        """Variable name → the value `slim` freezes into the file for this lever (its state in use)."""
        return {}

    def validate_metadata(self, metadata, check: MetadataChecks) -> None:
        """Check the metadata fields the lever owns, through `check`'s checks."""


def vector(values, length: int, name: str) -> np.ndarray:
    """A finite float32 vector of `length` values; missing (None) means zeros."""
    if values is None:
        return np.zeros(length, np.float32)
    values = np.asarray(values, np.float32)
    if values.shape != (length,) or not np.all(np.isfinite(values)):
        raise StateError(f"{name} must be {length} finite numbers, got shape {values.shape}")
    return values


def run_adapt(personalizer, signature: str, strength, method: str) -> dict:
    """Run an adapt_* signature after the checks they share: strength in [0, 1], data observed."""
    from .. import signatures as sig
    from ..input_checks import check_unit_interval

    value = check_unit_interval(strength, "strength")
    if personalizer.samples == 0:
        raise FinePruneError(f"no data observed yet: call observe() before {method}()")
    return personalizer._call(signature, **{sig.STRENGTH: np.array(value, np.float32)})


def run_prune(personalizer, signature: str, argument: str, value: float, method: str):
    """Run a pruning signature with its one checked `value` once data was observed; the sparsity now in use."""
    if personalizer.samples == 0:
        raise FinePruneError(f"no activity observed yet: call observe() with the user's data before {method}()")
    personalizer._call(signature, **{argument: np.array(value, np.float32)})
    return personalizer.sparsity()
