"""TFLite tensor types as numpy sees them, and symmetric (zero point 0) int8 quantization parameters."""

import numpy as np

FLOAT32, INT8 = 0, 9  # TensorType values
NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
               9: np.int8, 10: np.float64}


def symmetric_scales(tensor):
    """The float64 scales of a tensor quantized symmetrically (every zero point 0), or None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    if q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0):
        return None
    return np.asarray(q.scale, np.float64)


def along(scales, axis, ndim):
    """`scales` shaped to broadcast along `axis` of an `ndim` array (one scale: a scalar)."""
    if len(scales) == 1:
        return scales[0]
    shape = [1] * ndim
    shape[axis] = len(scales)
    return scales.reshape(shape)


def quantization_parameters(schema, scales, axis):
    """Symmetric (zero point 0) `QuantizationParametersT` with one scale per channel of `axis`."""
    q = schema.QuantizationParametersT()
    q.scale = np.asarray(scales, np.float32)
    q.zeroPoint = np.zeros(len(scales), np.int64)
    q.quantizedDimension = int(axis)
    return q
