"""What the TFLite builtin ops that slim folds or walks through compute, per channel, in numpy.

Constant folding evaluates them on constants; the channel plan evaluates them
on what a removed channel would have held (a per-channel constant), so that
constant can be folded into the consumer.
"""

import math

import numpy as np

from ..errors import SlimError


def _erf(values):
    return np.vectorize(math.erf, otypes=[np.float64])(values)


def _gelu(x, op):
    if op.builtinOptions is not None and getattr(op.builtinOptions, "approximate", False):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


UNARY = {
    "RELU": lambda x, op: np.maximum(x, 0),
    "RELU6": lambda x, op: np.clip(x, 0, 6),
    "RELU_N1_TO_1": lambda x, op: np.clip(x, -1, 1),
    "RELU_0_TO_1": lambda x, op: np.clip(x, 0, 1),
    "LOGISTIC": lambda x, op: 1 / (1 + np.exp(-x)),
    "TANH": lambda x, op: np.tanh(x),
    "HARD_SWISH": lambda x, op: x * np.clip(x + 3, 0, 6) / 6,
    "GELU": _gelu,
    "ELU": lambda x, op: np.where(x > 0, x, np.expm1(x)),
    "LEAKY_RELU": lambda x, op: np.where(x > 0, x, x * op.builtinOptions.alpha),
    "ABS": lambda x, op: np.abs(x),
    "NEG": lambda x, op: -x,
    "SQUARE": lambda x, op: x * x,
    "EXP": lambda x, op: np.exp(x),
    # BatchNorm with the user's statistics (relative AdaBN) computes its scale as rsqrt(variance + eps)
    # in the graph: folded once the statistics are constants, so the scale is a per-channel constant.
    "RSQRT": lambda x, op: 1 / np.sqrt(x),
    "SQRT": lambda x, op: np.sqrt(x),
    "LOG": lambda x, op: np.log(x),  # softplus and mish: log(exp(x) + 1)
}
BINARY = {
    "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
    "MAXIMUM": np.maximum, "MINIMUM": np.minimum, "SQUARED_DIFFERENCE": lambda a, b: (a - b) ** 2,
}


def _comparison(compare):
    """A comparison as 1.0 / 0.0, NaN where an operand is NaN (a removed channel's garbage stays garbage)."""
    def evaluate(a, b):
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(a) | np.isnan(b), np.nan, compare(a, b).astype(np.float64))
    return evaluate


COMPARISONS = {  # SELU's x > 0, before a SELECT_V2
    "GREATER": _comparison(np.greater), "GREATER_EQUAL": _comparison(np.greater_equal),
    "LESS": _comparison(np.less), "LESS_EQUAL": _comparison(np.less_equal),
}
# Ops that move, pad or crop positions (or blocks of them, for dilated convolutions) and keep every channel
# in its place whenever the channel count is the same before and after.
SPATIAL = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SLICE",
           "STRIDED_SLICE", "MAX_POOL_2D", "AVERAGE_POOL_2D")
FUSED = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
REDUCERS = ("MEAN", "REDUCE_MAX", "REDUCE_MIN")
SOURCES = ("CONV_2D", "FULLY_CONNECTED")  # the ops whose output channels slim removes


def fused(values, op):
    """`values` through `op`'s fused activation."""
    code = getattr(op.builtinOptions, "fusedActivationFunction", 0) if op.builtinOptions is not None else 0
    if code not in FUSED:
        raise SlimError(f"fused activation {code} is not supported by slim")
    name = FUSED[code]
    return values if name is None else UNARY[name](values, op)
