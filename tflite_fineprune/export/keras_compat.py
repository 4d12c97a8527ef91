"""Every use of Keras internals, in one place, behind a version fence.

The exporter walks a model's layer graph and calls layers statelessly, which
public Keras API does not fully expose: the node list by depth, the functional
graph behind a Sequential, which layers take a `training` argument, and the op
classes behind `x + y` on symbolic tensors. These are stable across Keras 3.x;
another major version is refused with a clear error instead of failing deep
inside an export.
"""

import keras

from ..errors import FinePruneError

SUPPORTED_MAJOR = 3


def check_keras_version(version=None):
    """Raise unless the installed Keras is of the supported major version."""
    version = version or keras.__version__
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        major = None
    if major != SUPPORTED_MAJOR:
        raise FinePruneError(
            f"tflite-fineprune exports with Keras {SUPPORTED_MAJOR}.x; found Keras {version}. "
            f"Install it with: pip install 'keras>={SUPPORTED_MAJOR},<{SUPPORTED_MAJOR + 1}'"
        )


check_keras_version()

from keras.src.ops import numpy as _keras_numpy_ops  # noqa: E402  (after the version fence)

# Operation classes Keras records for arithmetic on symbolic tensors (`x + 3`, `x * y`, `x / 6`).
ADD_OP = _keras_numpy_ops.Add
SUBTRACT_OP = _keras_numpy_ops.Subtract
MULTIPLY_OP = _keras_numpy_ops.Multiply
DIVIDE_OP = _keras_numpy_ops.TrueDivide


def is_keras_op(cls):
    """True for Keras' internal operation classes (not layers a user would name)."""
    return cls.__module__.startswith("keras.src.ops")


def functional_graph(model):
    """The functional graph behind a model (a built Sequential's inner Functional), or None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


def nodes_by_depth(functional):
    """`{depth: [Node, ...]}` of a functional model, or None for a model without a layer graph."""
    return getattr(functional, "_nodes_by_depth", None)


def takes_training_argument(layer):
    """Whether `layer.call` accepts `training` (so export can force inference behaviour)."""
    return "training" in getattr(layer, "_call_context_args", ())
