"""Integer (int8) exports: how the TFLite converter is told to quantize a masked model.

`quantize="int8"` is dynamic-range quantization: int8 weights, float
activations (hybrid kernels), mask/counter/state variables and all the
routine's arithmetic float. Full-integer quantization (int8 activations,
calibrated on representative data) was measured and is not offered: the
quantizer also turns the counter updates (`counts + delta`, `samples + n`)
and the per-batch activity sums into int8 arithmetic calibrated on a few
batches, so the activity counts come out wrong (docs/quantization.md).
Representative data, when given, checks the int8 file against the Keras
model on the user's own samples instead.
"""

import numpy as np

from ..errors import FinePruneError, InputError, ModelError
from ..tflite.weight_quantization import DYNAMIC_RANGE, QUANTIZATIONS, check_quantize  # noqa: F401 (re-exported)

VERIFY_SAMPLES = 64  # representative samples the export compares against Keras


def check_representative_data(data, input_shape, input_dtype):
    """The samples to check the int8 file on, as an array `[N, *input_shape[1:]]` of the model's input dtype."""
    try:
        array = np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"representative_data must be an array of samples: {exc}") from None
    expected = tuple(input_shape[1:])
    if array.ndim == len(expected):  # one sample without the batch axis
        array = array[None]
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected:
        raise InputError(f"representative_data has shape {array.shape}; expected (N, "
                         f"{', '.join(str(d) for d in expected)})")
    if len(array) == 0:
        raise InputError("representative_data is empty; give at least one sample of the user's data")
    if array.dtype.kind not in "fiub":
        raise InputError(f"representative_data has dtype {array.dtype}; expected numbers ({input_dtype})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError("representative_data contains NaN or infinite values")
    if np.dtype(input_dtype).kind in "iu":
        info = np.iinfo(input_dtype)
        if array.min() < info.min or array.max() > info.max:
            raise InputError(f"representative_data values [{array.min()}, {array.max()}] do not fit the "
                             f"model's {input_dtype} input")
    return array.astype(input_dtype, copy=False)


def configure(converter, quantize):
    """Set `converter` up for `quantize`; returns the method recorded in the metadata ("" for float)."""
    import tensorflow as tf

    if quantize is None:
        return ""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # One scale per dense kernel: per-unit scales need FULLY_CONNECTED version 12, which tflite-runtime 2.14
    # refuses (the same choice as slim's tflite/weight_quantization.py).
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return DYNAMIC_RANGE


def int8_weight_bytes(model_bytes):
    """Bytes of constant int8 tensors (quantized weights) in a converted flatbuffer."""
    from ..tflite.schema import load_schema

    schema = load_schema()
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    seen, total = set(), 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            buffer = tensor.Buffer()
            if tensor.Type() == schema.TensorType.INT8 and buffer and buffer not in seen:
                seen.add(buffer)
                total += model.Buffers(buffer).DataLength()
    return total


def check_quantized(model_bytes, method):
    """Refuse a conversion that left every weight float: nothing the converter could quantize."""
    if method and int8_weight_bytes(model_bytes) == 0:
        raise ModelError(
            f"the model cannot be quantized ({method}): the converter left every weight float "
            "(dynamic range only quantizes weight tensors of at least 1024 elements); export it without quantize")


def load_representative_file(path):
    """Samples to check an int8 export on, from a `.npy` file (the CLI's --representative-data)."""
    if path is None:
        return None
    if not str(path).endswith(".npy"):
        raise FinePruneError(f"--representative-data expects a .npy file of samples [N, *input_shape]; got {path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read representative data {path!r}: {exc}") from None
