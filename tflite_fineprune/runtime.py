"""Personalize an exported model through a TFLite interpreter, without TensorFlow."""

import os
from typing import Optional, Union

import numpy as np

from . import signatures as sig
from .errors import FinePruneError, InputError, ModelError, NonFiniteActivity, StateError  # noqa: F401 (public)
from .input_checks import check_batch, check_positive_int, refuse_overflow
from .interpreters import open_interpreter
from .levers import PERSONALIZER_METHODS, used
from .metadata import read_model_file
from .progress import progress_bar
from .sparsity import Sparsity, measure_sparsity
from .state import MAX_STATE_BYTES, State, check_counters, decode_model_state, encode_state
from .safe_io import atomic_write, read_file

DEFAULT_BATCH_SIZE = 32

_PROGRESS_MIN_BATCHES = 20


class Personalizer(*PERSONALIZER_METHODS):
    """One user's copy of an exported model: observe their data, prune, save.

    Its attributes `model_path`, `metadata` (the checked `ModelMetadata`) and `backend` (the interpreter used)
    describe what was opened.

    The levers' methods (`prune`, `prune_outputs`, `prune_dormant`, ...) come from their folders in levers/.

    Parameters
    ----------
    model_path : str or path
        A `.tflite` written by `export_model`.
    backend : {"auto", "litert", "tflite_runtime", "tensorflow"}
        Which interpreter runs the model.
    batch_size : int
        Samples per interpreter call in `predict` and `observe`.
    num_threads : int, optional
        Interpreter threads (default: the interpreter's own choice).

    Raises
    ------
    ModelError
        When the file is not a readable export of a supported format version (with the signatures it describes).
    FinePruneError
        When `model_path` is not a path, the backend is unknown, or no interpreter is installed.
    """

    def __init__(self, model_path: Union[str, os.PathLike], backend: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE, num_threads: Optional[int] = None):
        if not isinstance(model_path, (str, bytes, os.PathLike)):
            raise FinePruneError(f"model_path must be a path, got {type(model_path).__name__}")
        self.model_path = os.fspath(model_path)
        self.batch_size = check_positive_int(batch_size, "batch_size") or DEFAULT_BATCH_SIZE
        num_threads = check_positive_int(num_threads, "num_threads")
        # The interpreter runs exactly the bytes whose metadata and weights were checked.
        content, self.metadata = read_model_file(self.model_path)
        self._interpreter, self.backend = open_interpreter(self.model_path, backend, num_threads, content=content)
        try:
            available = set(self._interpreter.get_signature_list())
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.model_path}: cannot list the model's signatures ({exc})") from None
        missing = [name for name in self.metadata.signatures if name not in available]
        if missing:
            raise ModelError(f"{self.model_path}: signatures {missing} are described but missing from the model")
        self._runners = {}

    # -- description -----------------------------------------------------

    @property
    def groups(self) -> tuple:
        """The unit groups, in mask-vector order (`UnitGroup` records)."""
        return self.metadata.groups

    @property
    def labels(self) -> list:
        """The class labels of the output, in output order (empty when the export was given none)."""
        return list(self.metadata.labels)

    @property
    def input_shape(self) -> tuple:
        """The model's input shape, batch dimension first (None where the export left it free)."""
        return self.metadata.input_shape

    # -- running ---------------------------------------------------------

    def _runner(self, name):
        if self.metadata.slim and name != sig.INFER:
            raise ModelError(f"{self.model_path} is a slim model (pruned units removed): it can only predict; "
                             "observe, prune and state calls need the original export")
        if name not in self._runners:
            if name not in self.metadata.signatures:
                raise ModelError(f"{self.model_path} was exported without the {name!r} signature")
            try:
                self._runners[name] = self._interpreter.get_signature_runner(name)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{self.model_path}: the model's {name!r} signature is unusable ({exc}); "
                                 "the file may be damaged") from None
        return self._runners[name]

    def _call(self, name, **feeds):
        """Run one signature; interpreter failures become `FinePruneError` naming the signature."""
        runner = self._runner(name)
        try:
            return runner(**feeds)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ModelError(f"{self.model_path}: the {name!r} signature failed ({exc}); "
                             "the file may be damaged") from None

    def _batches(self, x, batch_size):
        """Checked batches of the model's dtype, produced one at a time (an iterable is never held whole)."""
        if isinstance(x, (str, bytes, os.PathLike)):
            raise InputError("expected an array or an iterable of batches, got a path; load the files first")
        step = check_positive_int(batch_size, "batch_size") or self.batch_size
        rank = len(self.metadata.input_shape)
        if not isinstance(x, np.ndarray) and isinstance(x, (list, tuple)):
            try:
                candidate = np.asarray(x)
            except ValueError:
                candidate = None
            if candidate is not None and candidate.dtype != object and candidate.ndim == rank:
                x = candidate
        if isinstance(x, np.ndarray) or np.isscalar(x):
            arr = self._check(x, "input")
            return [arr[i:i + step] for i in range(0, len(arr), step)]
        try:
            iterator = iter(x)
        except TypeError:
            raise InputError(f"expected an array or an iterable of batches, got {type(x).__name__}") from None
        return self._checked_stream(iterator)

    def _check(self, x, what):
        return check_batch(x, self.metadata.input_shape, self.metadata.input_dtype, what=what,
                           int16_scale=self.metadata.int16_scale)

    def _checked_stream(self, iterator):
        count = 0
        for count, batch in enumerate(iterator, start=1):
            yield self._check(batch, f"batch {count - 1}")
        if count == 0:
            raise InputError("no data: the iterable of batches is empty")

    def _run_batches(self, name, x, batch_size, progress, desc, after_each=None, second=None):
        """The signature's output over every batch; with `second`, also that output (None when it has none).
        `after_each(index, batch)` runs after each batch (observe's overflow check)."""
        batches = self._batches(x, batch_size)
        if progress is None:
            progress = not isinstance(batches, list) or len(batches) >= _PROGRESS_MIN_BATCHES
        total = len(batches) if isinstance(batches, list) else None
        results = []
        for index, batch in enumerate(progress_bar(batches, desc, "batch", progress, total)):
            result = self._call(name, **{sig.INPUT: batch})
            results.append({sig.OUTPUT: result[sig.OUTPUT], second: result.get(second)} if second else result)
            if after_each is not None:
                after_each(index, batch)
        outputs = np.concatenate([r[sig.OUTPUT] for r in results], axis=0)
        if second is None:
            return outputs
        extra = [r.get(second) for r in results]
        return outputs, (None if any(e is None for e in extra) else np.concatenate(extra, axis=0))

    def predict(self, x, batch_size: Optional[int] = None, progress: bool = False) -> np.ndarray:
        """Model outputs for the samples `x`, with the current masks and lever state.

        Parameters
        ----------
        x : array_like or iterable of array_like
            Samples of shape `(N,) + input_shape[1:]` and the model's input dtype, or an iterable of such
            batches (consumed one batch at a time).
        batch_size : int, optional
            Samples per interpreter call when `x` is one array (default: the `Personalizer`'s `batch_size`).
        progress : bool
            Show a progress bar (tqdm, when installed).

        Returns
        -------
        numpy.ndarray
            The outputs, one row per sample: `(N, num_classes)` for a classifier.
        """
        return self._run_batches(sig.INFER, x, batch_size, progress, "predict")

    def observe(self, x, batch_size: Optional[int] = None, progress: Optional[bool] = None) -> np.ndarray:
        """Run unlabeled samples forward, accumulating unit activity (and each lever's sums).

        If any batch is refused, nothing of this call is counted: the state is restored to what it was before.

        Parameters
        ----------
        x : array_like or iterable of array_like
            Samples of shape `(N,) + input_shape[1:]`, or an iterable of such batches (consumed one batch at a
            time, never held whole).
        batch_size : int, optional
            Samples per interpreter call when `x` is one array (default: the `Personalizer`'s `batch_size`).
        progress : bool, optional
            Show a progress bar; by default shown for an iterable or for 20 batches or more.

        Returns
        -------
        numpy.ndarray
            The model's outputs for the samples, one row per sample.

        Raises
        ------
        InputError
            When a batch is refused (shape, dtype, values) or the iterable is empty.
        NonFiniteActivity
            When a batch overflows inside the model (an `InputError`; its `batch` says which).
        ModelError
            When the model is slim.
        """
        return self.observe_typicality(x, batch_size, progress)[0]

    def observe_typicality(self, x, batch_size: Optional[int] = None, progress: Optional[bool] = None):
        """`observe`, also returning how far each sample's BatchNorm inputs sit from the export's reference pool.

        Parameters
        ----------
        x, batch_size, progress
            As for `observe`.

        Returns
        -------
        tuple of numpy.ndarray
            The outputs, and each sample's typicality as a multiple of the reference pool's 95th percentile (above
            1: not the model's world; tflite_fineprune/open_set.py), or None for an export without it.
        """
        before = self.get_state()
        try:
            return self._run_batches(sig.COLLECT, x, batch_size, progress, "observe", second=sig.TYPICALITY,
                                     after_each=lambda index, batch: refuse_overflow(self.get_state(), index, batch))
        except BaseException:
            self.set_state(before)
            raise

    def reset(self, counts: bool = True, masks: bool = True) -> None:
        """Clear the activity counters and/or restore every unit.

        Parameters
        ----------
        counts : bool
            Clear the activity counters, the sample count and the levers' sums (moments, prototypes, ...).
        masks : bool
            Restore every unit (mask 1) and the levers' trained values (class weights, BatchNorm statistics,
            classifier kernel): the dense model as exported.
        """
        self._call(sig.RESET, **{sig.CLEAR_COUNTS: np.array(int(bool(counts)), np.int32),
                                   sig.CLEAR_MASKS: np.array(int(bool(masks)), np.int32)})

    # -- state -------------------------------------------------------------

    def get_state(self) -> State:
        """The model's current personalization, read from its variables.

        Returns
        -------
        State
            Masks (1 kept, 0 pruned) and activity counters, one float32 entry per unit in mask-vector order
            (`groups`), the number of samples observed, and the vectors of every lever's state block this
            export carries (None for the others).

        Raises
        ------
        ModelError
            When the `get_state` signature does not return what the metadata describes (a damaged file).
        """
        out = self._call(sig.GET_STATE, **{sig.TOKEN: np.array(0, np.int32)})
        # get_state names each lever's vectors after the State fields of its block.
        fields = [field for lever in used(self.metadata) if lever.block is not None for field in lever.block.fields]
        missing = [name for name in (sig.MASKS, sig.COUNTS, sig.SAMPLES, *fields) if name not in out]
        masks, n = np.array(out.get(sig.MASKS, ()), np.float32), self.metadata.num_units
        if missing or masks.shape != (n,) or not np.all((masks == 0) | (masks == 1)):
            raise ModelError(f"{self.model_path}: its get_state signature returns no {missing} or masks of shape "
                             f"{masks.shape} not 0/1 for the {n} units its metadata describes (a damaged file)")
        extra = {field: np.array(out[field], np.float32) for field in fields}
        return State(masks=masks, counts=np.array(out[sig.COUNTS], np.float32),
                     samples=float(np.ravel(out[sig.SAMPLES])[0]), **extra)

    def set_state(self, state: State) -> None:
        """Put a saved personalization back into the model (masks, counters and the levers' blocks).

        A lever block that `state` lacks (a file of an older format version) leaves that lever as exported.

        Parameters
        ----------
        state : State
            From `get_state` of a model with the same units (typically the same export).

        Raises
        ------
        StateError
            When `state` is not a `State`, its vectors do not fit this model's units, its masks are not 0/1
            or prune every unit of a group, or its counters are negative, not finite or exceed the samples.
        ModelError
            When the model is slim.
        """
        if not isinstance(state, State):
            raise StateError(f"expected a tflite_fineprune.State, got {type(state).__name__}")
        try:
            masks = np.asarray(state.masks, np.float32)
            counts = np.asarray(state.counts, np.float32)
            samples = float(state.samples)
        except (TypeError, ValueError) as exc:
            raise StateError(f"state values are not numbers ({exc})") from None
        n = self.metadata.num_units
        if masks.shape != (n,) or counts.shape != (n,):
            raise StateError(f"state has masks {masks.shape} and counts {counts.shape}; this model has {n} units")
        if not np.all((masks == 0) | (masks == 1)):
            raise StateError("masks must be 0 or 1")
        check_counters(counts, samples, "state")
        for group in self.groups:
            if not masks[group.offset:group.offset + group.units].any():
                raise StateError(f"masks prune every unit of {group.name!r}; at least one must stay")
        extras = {lever.set_signature: lever.feed(self.metadata, state)
                  for lever in used(self.metadata) if lever.set_signature is not None}
        if any(feed is None for feed in extras.values()):
            extras = {name: feed for name, feed in extras.items() if feed is not None}
            self.reset()  # trained BatchNorm statistics / kernel, nothing collected; set_state below sets the rest
        self._call(sig.SET_STATE, **{sig.MASKS: masks, sig.COUNTS: counts,
                                     sig.SAMPLES: np.array([samples], np.float32)})
        for name, feed in extras.items():
            self._call(name, **feed)

    def slim(self, path: Union[str, os.PathLike], quantize: Optional[str] = None):
        """Write the current personalization as a plain `.tflite` without the pruned units.

        Parameters
        ----------
        path : str or os.PathLike
            The `.tflite` file to write (atomically).
        quantize : {None, "int8"}
            "int8": with int8 weights (dynamic range; docs/slim.md).

        Returns
        -------
        SlimReport
            What was written: sizes in bytes, units kept, weight and MAC sparsity.
        """
        from .slim import slim_model

        return slim_model(self.model_path, self.get_state(), path, quantize=quantize)

    def save_state(self, path: Union[str, os.PathLike]) -> None:
        """Write the current state to a file atomically (temp file, fsync, rename).

        Parameters
        ----------
        path : str or os.PathLike
            The state file (docs/state_format.md); never the model file itself.
        """
        if os.path.exists(path) and os.path.samefile(path, self.model_path):
            raise FinePruneError(f"cannot save the state to {os.fspath(path)!r}: it is the model file itself")
        atomic_write(path, encode_state(self.metadata.fingerprint, self.get_state()))

    def load_state(self, path: Union[str, os.PathLike]) -> None:
        """Load a state file written by `save_state`; on any error the current state is left untouched.

        Parameters
        ----------
        path : str or os.PathLike
            A state file of this model (its fingerprint must match).

        Raises
        ------
        StateError
            When the file cannot be read, is not this model's state file, or holds values `set_state` refuses.
        ModelError
            When the model is slim.
        """
        self._runner(sig.SET_STATE)  # a slim model says so before the file is judged against it
        blob = read_file(path, "state file", max_bytes=MAX_STATE_BYTES, error=StateError)
        self.set_state(decode_model_state(blob, self.metadata, source=os.fspath(path)))

    # -- automatic personalization (the levers' methods come from the bases) --

    def personalize(self, x, rule=None, batch_size: Optional[int] = None, progress: Optional[bool] = None):
        """Observe the user's unlabeled `x` and apply the recipe chosen for it, without labels.

        Starts from the dense model (earlier personalization is reverted). The
        choice (tflite_fineprune/auto_recipe.py; docs/personalization.md) uses only
        what this file's signatures offer; `reset()` reverts it.

        Parameters
        ----------
        x : array_like or iterable of array_like
            The user's unlabeled samples, as for `observe` (an iterator is read into a list: the recipe passes
            over the data more than once).
        rule : AutoRule, optional
            The recipe's thresholds (default: `AutoRule()`).
        batch_size : int, optional
            Samples per interpreter call (default: the `Personalizer`'s `batch_size`).
        progress : bool, optional
            Show progress bars, as for `observe`.

        Returns
        -------
        PersonalizationReport
            What was chosen and on what evidence.

        Raises
        ------
        InputError
            When the samples are refused, as for `observe`.
        """
        from .auto_recipe import personalize

        return personalize(self, x, rule, batch_size=batch_size, progress=progress)

    # -- views -------------------------------------------------------------

    @property
    def samples(self) -> int:
        """Number of samples observed since the counters were last cleared."""
        return int(round(self.get_state().samples))

    def _split(self, vector):
        return {g.name: vector[g.offset:g.offset + g.units] for g in self.groups}

    @property
    def activity(self) -> dict:
        """Layer name → fraction of (sample, position) pairs where each unit was > 0.

        For the output group (when exported) it is the fraction of samples
        predicted as each class.
        """
        state = self.get_state()
        return self._split(state.counts / max(state.samples, 1.0))

    @property
    def masks(self) -> dict:
        """Layer name → 0/1 array (1 = unit kept)."""
        return {k: v.astype(np.uint8) for k, v in self._split(self.get_state().masks).items()}

    def sparsity(self) -> Sparsity:
        """Unit, weight and MAC sparsity of the current masks.

        Returns
        -------
        Sparsity
            Fractions in [0, 1] of the units, weights and multiply-accumulates removed, with their counts.
        """
        return measure_sparsity(self.metadata, self.get_state().masks)

    def __repr__(self):
        if self.metadata.slim:
            return f"Personalizer({self.model_path!r}, backend={self.backend!r}, slim)"
        s = self.sparsity()
        return (f"Personalizer({self.model_path!r}, backend={self.backend!r}, units={self.metadata.num_units}, "
                f"unit_sparsity={s.units:.3f})")
