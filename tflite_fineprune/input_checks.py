"""Validation of the arrays fed to an exported model."""

import dataclasses

import numpy as np

from .errors import FinePruneError, InputError, NonFiniteActivity


def check_batch(x, input_shape, dtype="float32", what="input", int16_scale=0.0):
    """Return `x` as a C-contiguous array of the model's dtype, or raise.

    Parameters
    ----------
    x : array_like
        A batch, shape `(N,) + input_shape[1:]`.
    input_shape : sequence of int or None
        The model's input shape; the first (batch) entry is ignored.
    dtype : str
        The model's input dtype. Any floating array is cast to it; integer,
        boolean, complex and object arrays are rejected for float models.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and similar
        raise InputError(f"{what} cannot be read as an array: {exc}") from None
    expected = tuple(input_shape[1:])
    if arr.dtype == object:
        raise InputError(f"{what} has dtype object; expected a numeric {dtype} array")
    if arr.ndim != len(expected) + 1:
        hint = " (a single sample? add a batch axis: x[None])" if arr.ndim == len(expected) else ""
        raise InputError(
            f"{what} has rank {arr.ndim} and shape {arr.shape}; expected rank {len(expected) + 1}, "
            f"shape (N, {', '.join(map(str, expected))}){hint}"
        )
    if tuple(arr.shape[1:]) != expected:
        raise InputError(f"{what} has shape {arr.shape}; expected (N, {', '.join(map(str, expected))})")
    if arr.shape[0] == 0:
        raise InputError(f"{what} is empty: a batch of 0 samples")
    target = np.dtype(dtype)
    if int16_scale and arr.dtype == np.int16 and target.kind == "f":
        return np.ascontiguousarray(arr.astype(target) * target.type(int16_scale))
    if target.kind == "f":
        if arr.dtype.kind != "f":
            also = " or int16" if int16_scale else ""
            raise InputError(f"{what} has dtype {arr.dtype}; expected a floating-point array ({dtype}){also}")
        # Checked after the cast: a finite float64 such as 1e300 becomes inf in float32.
        with np.errstate(over="ignore"):
            cast = np.ascontiguousarray(arr, dtype=target)
        if not np.all(np.isfinite(cast)):
            bad = int(np.sum(~np.isfinite(cast)))
            raise InputError(f"{what} contains {bad} NaN or infinite values (as {dtype}: finite values beyond "
                             f"±{np.finfo(target).max:.3g} count as infinite)")
        return cast
    if arr.dtype != target:
        raise InputError(f"{what} has dtype {arr.dtype}; expected {dtype}")
    return np.ascontiguousarray(arr, dtype=target)


def check_positive_int(value, name):
    """`value` as a positive int (None → None, meaning the default); `name` says which setting in errors."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise FinePruneError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise FinePruneError(f"{name} must be a positive integer, got {value}")
    return int(value)


def check_unit_interval(value, name):
    """`value` as a float in [0, 1] (NaN, strings and the like refused, saying which setting)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise FinePruneError(f"{name} must be a number in [0, 1], got {value!r}")
    return number


def check_sparsity(sparsity, name="sparsity"):
    if isinstance(sparsity, (str, bytes, bool, np.bool_)):
        raise FinePruneError(f"{name} must be a number in [0, 1), got {sparsity!r}")
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise FinePruneError(f"{name} must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise FinePruneError(f"{name} must be in [0, 1), got {value}")
    return value


def refuse_overflow(state, index, batch):
    """After each observed batch: float32-max inputs are finite but can overflow inside the model, and the sums
    would then be refused only when saved. Said here, naming the batch (`observe` rolls the call back)."""
    values = [getattr(state, field.name) for field in dataclasses.fields(state)]
    if all(np.all(np.isfinite(v)) for v in values if v is not None):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        largest = float(np.max(np.abs(np.asarray(batch).astype(np.float64))))
    raise NonFiniteActivity(
        f"batch {index} of the input (largest |value| {largest:.3g}) overflowed inside the model: the activity "
        "sums it would add are infinite or NaN, so nothing of this observe call was counted. Feed values in the "
        "range the model was trained on", index)
