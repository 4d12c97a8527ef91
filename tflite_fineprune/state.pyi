# Typed outline of state.py for IDEs and type checkers: `State` is built by dataclasses.make_dataclass from the
# lever table (one optional field per vector of every lever's state block), which no checker follows.
# tests/test_stubs.py keeps it equal to the module: a lever with a new block adds its fields here too.
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np

from .metadata import ModelMetadata
# Re-exported: they lived in state.py before safe_io.py.
from .safe_io import atomic_write as atomic_write, check_output_folder as check_output_folder, \
    read_file as read_file, starts_with as starts_with

MAGIC: bytes
STATE_VERSION: int
READABLE_VERSIONS: tuple[int, ...]
MAX_SAMPLES: float
MAX_STATE_BYTES: int

@dataclass(frozen=True)
class State:
    masks: np.ndarray
    counts: np.ndarray
    samples: float
    # mean_compensation
    sums: Optional[np.ndarray] = None
    fill: Optional[np.ndarray] = None
    # prior_correction
    log_weights: Optional[np.ndarray] = None
    soft_counts: Optional[np.ndarray] = None
    # normalization_shift
    norm_sums: Optional[np.ndarray] = None
    norm_squares: Optional[np.ndarray] = None
    norm_count: Optional[np.ndarray] = None
    norm_mean: Optional[np.ndarray] = None
    norm_var: Optional[np.ndarray] = None
    # classifier_prototypes
    proto_counts: Optional[np.ndarray] = None
    proto_sums: Optional[np.ndarray] = None
    head_kernel: Optional[np.ndarray] = None
    # magnitude_pruning
    magnitudes: Optional[np.ndarray] = None

def encode_state(fingerprint_hex: str, state: State) -> bytes: ...
def decode_state(blob: bytes, fingerprint_hex: str, num_units: int, source: str = ...,
                 blocks: Optional[Mapping[str, tuple]] = ...,
                 described: Optional[Mapping[str, Mapping[str, Any]]] = ...) -> State: ...
def decode_model_state(blob: bytes, metadata: ModelMetadata, source: str = ...) -> State: ...
def check_counters(counts: np.ndarray, samples: float, source: str = ...) -> None: ...
def is_state_file(path: Union[str, os.PathLike]) -> bool: ...
