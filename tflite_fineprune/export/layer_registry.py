"""Which Keras layers the exporter understands, and what each means for pruning.

Every layer class maps to one `Role`:

* UNITS — holds weights and produces prunable units along its last axis.
* CHAIN — per-channel op that may follow a UNITS layer before its mask
  (BatchNormalization, activations); the mask multiplies the chain's end.
* CHANNELWISE — keeps channels independent (pooling, padding, dropout,
  rescaling, per-channel normalization); a zeroed unit stays removable.
* MIXING — combines channels (softmax over the channel axis).
* FLATTEN, RESHAPE, CONCAT — change the channel layout in a traceable way.
* MERGE — combines two paths element by element (Add, Multiply, ...): a unit
  feeding one side is not removed by masking it, so it is not prunable.
* ELEMENTWISE_OP — a Keras op on tensors (`x + 3`, `x * y`): channel-wise with
  one tensor operand, a merge with two.
"""

import dataclasses
import enum

from keras import layers

from ..errors import FinePruneError, ModelError
from .keras_compat import ADD_OP, DIVIDE_OP, MULTIPLY_OP, SUBTRACT_OP, is_keras_op


class Role(enum.Enum):
    """What a layer class means for pruning (the module docstring says each); public as `LayerRole`."""

    UNITS = "units"
    CHAIN = "chain"
    CHANNELWISE = "channelwise"
    MIXING = "mixing"
    FLATTEN = "flatten"
    RESHAPE = "reshape"
    CONCAT = "concat"
    MERGE = "merge"
    ELEMENTWISE_OP = "elementwise_op"


class UnitKind(enum.Enum):
    DENSE = "dense"  # Dense, Conv1D, Conv2D
    DEPTHWISE = "depthwise"  # DepthwiseConv1D/2D
    SEPARABLE = "separable"  # SeparableConv1D/2D


@dataclasses.dataclass(frozen=True)
class Rule:
    role: Role
    unit_kind: UnitKind = None


_U = Role.UNITS
REGISTRY = {
    layers.Dense: Rule(_U, UnitKind.DENSE),
    layers.Conv1D: Rule(_U, UnitKind.DENSE),
    layers.Conv2D: Rule(_U, UnitKind.DENSE),
    layers.DepthwiseConv1D: Rule(_U, UnitKind.DEPTHWISE),
    layers.DepthwiseConv2D: Rule(_U, UnitKind.DEPTHWISE),
    layers.SeparableConv1D: Rule(_U, UnitKind.SEPARABLE),
    layers.SeparableConv2D: Rule(_U, UnitKind.SEPARABLE),
    layers.BatchNormalization: Rule(Role.CHAIN),
    layers.Activation: Rule(Role.CHAIN),
    layers.ReLU: Rule(Role.CHAIN),
    layers.LeakyReLU: Rule(Role.CHAIN),
    layers.ELU: Rule(Role.CHAIN),
    layers.Softmax: Rule(Role.MIXING),
    layers.Dropout: Rule(Role.CHANNELWISE),
    layers.SpatialDropout1D: Rule(Role.CHANNELWISE),
    layers.SpatialDropout2D: Rule(Role.CHANNELWISE),
    layers.GaussianNoise: Rule(Role.CHANNELWISE),
    layers.GaussianDropout: Rule(Role.CHANNELWISE),
    layers.MaxPooling1D: Rule(Role.CHANNELWISE),
    layers.MaxPooling2D: Rule(Role.CHANNELWISE),
    layers.AveragePooling1D: Rule(Role.CHANNELWISE),
    layers.AveragePooling2D: Rule(Role.CHANNELWISE),
    layers.GlobalAveragePooling1D: Rule(Role.CHANNELWISE),
    layers.GlobalAveragePooling2D: Rule(Role.CHANNELWISE),
    layers.GlobalMaxPooling1D: Rule(Role.CHANNELWISE),
    layers.GlobalMaxPooling2D: Rule(Role.CHANNELWISE),
    layers.ZeroPadding1D: Rule(Role.CHANNELWISE),
    layers.ZeroPadding2D: Rule(Role.CHANNELWISE),
    layers.Cropping1D: Rule(Role.CHANNELWISE),
    layers.Cropping2D: Rule(Role.CHANNELWISE),
    layers.Rescaling: Rule(Role.CHANNELWISE),
    layers.Normalization: Rule(Role.CHANNELWISE),
    layers.Identity: Rule(Role.CHANNELWISE),
    layers.Flatten: Rule(Role.FLATTEN),
    layers.Reshape: Rule(Role.RESHAPE),
    layers.Concatenate: Rule(Role.CONCAT),
    layers.Add: Rule(Role.MERGE),
    layers.Subtract: Rule(Role.MERGE),
    layers.Multiply: Rule(Role.MERGE),
    layers.Average: Rule(Role.MERGE),
    layers.Maximum: Rule(Role.MERGE),
    layers.Minimum: Rule(Role.MERGE),
    ADD_OP: Rule(Role.ELEMENTWISE_OP),
    SUBTRACT_OP: Rule(Role.ELEMENTWISE_OP),
    MULTIPLY_OP: Rule(Role.ELEMENTWISE_OP),
    DIVIDE_OP: Rule(Role.ELEMENTWISE_OP),
}

def register(layer_class: type, role: "Role") -> None:
    """Teach the exporter a custom layer (e.g. a feature front-end) by its `Role`.

    A fixed feature transform that does not keep channels independent is
    `Role.MIXING`: units before it are not prunable, and its output starts
    fresh channels for the layers after it.

    Parameters
    ----------
    layer_class : type
        The Keras layer class; its subclasses get the same role unless registered themselves.
    role : Role
        Any role but `Role.UNITS` (the exporter cannot mask a custom layer's own units).

    Raises
    ------
    FinePruneError
        When `role` is not a `Role`, or is `Role.UNITS`.
    """
    if not isinstance(role, Role) or role is Role.UNITS:
        raise FinePruneError(f"custom layers can take any role but UNITS, got {role!r}")
    REGISTRY[layer_class] = Rule(role)


# Activations that mix the channel axis: a masked unit does not stay zero through them.
CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax"}


def supported_names():
    return sorted({cls.__name__ for cls in REGISTRY if not is_keras_op(cls)})


def rule_for(layer):
    """The `Rule` of a layer (by its class or nearest registered base class)."""
    for cls in type(layer).__mro__:
        if cls in REGISTRY:
            rule = REGISTRY[cls]
            _check_options(layer, rule)
            return rule
    raise ModelError(
        f"layer {layer.name!r} ({type(layer).__name__}) is not supported by tflite-fineprune; "
        f"supported layers: {', '.join(supported_names())}"
    )


def _check_options(layer, rule):
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format not in (None, "channels_last"):
        raise ModelError(
            f"layer {layer.name!r} uses data_format={data_format!r}; only 'channels_last' is supported"
        )
    if rule.role is Role.UNITS and getattr(layer, "groups", 1) != 1:
        raise ModelError(f"layer {layer.name!r} is a grouped convolution (groups={layer.groups}); not supported")


def activation_name(layer):
    """Name of the activation a layer applies (`"linear"` when none)."""
    fn = getattr(layer, "activation", None)
    if fn is None:
        if isinstance(layer, layers.Softmax):
            return "softmax"
        return "relu" if isinstance(layer, layers.ReLU) else type(layer).__name__.lower()
    return getattr(fn, "__name__", str(fn))


def is_mixing(layer, rule):
    if rule.role is Role.MIXING:
        return True
    return rule.role is Role.CHAIN and activation_name(layer) in CHANNEL_MIXING_ACTIVATIONS
