"""How `collect` counts unit activity: on every spatial position (exact) or on a strided grid of them.

Counting reads the whole masked tensor once more, which on MobileNets costs
more than the masking itself (benchmarks/overhead.py). A unit's activity is
the fraction of positions where it is > 0, a spatial mean: a regular grid of
at least `min_positions` positions estimates it closely on large feature maps
(docs/performance.md shows the per-user results do not change), and small
maps are counted exactly.
"""

import math

import tensorflow as tf

EXACT = 0  # `min_positions` meaning: count every position
DEFAULT_MIN_POSITIONS = 256


def is_positive(value):
    """1 where value > 0, else 0, as a clamp to [0, 1] and a CEIL.

    Both are unary ops XNNPACK delegates. The earlier form, RELU6(value * 2**100),
    cost 1.2x `infer` on its own on MobileNetV2 (benchmarks/collect_profile.py)
    and counted positive values below about 5e-30 only partially; GREATER + CAST
    falls outside XNNPACK altogether.
    """
    return tf.math.ceil(tf.clip_by_value(value, 0.0, 1.0))


def spatial_stride(spatial_shape, min_positions):
    """The largest stride, the same on every spatial axis, that keeps at least `min_positions` positions."""
    if min_positions <= EXACT or not spatial_shape:
        return 1
    stride = 1
    while math.prod(math.ceil(d / (stride + 1)) for d in spatial_shape) >= min_positions:
        stride += 1
    return stride


def sampled(value, stride):
    """`value` [N, *spatial, C] on every `stride`-th position of each spatial axis (the grid centred)."""
    if stride == 1:
        return value
    spatial = value.shape[1:-1]
    index = (slice(None),) + tuple(slice((d - 1) % stride // 2, None, stride) for d in spatial) + (slice(None),)
    return value[index]


def count_active(value, units, min_positions=EXACT):
    """Per unit, the sum over the batch of the fraction of (sampled) positions where it is > 0."""
    spatial = list(range(1, len(value.shape) - 1))
    if spatial:
        value = sampled(value, spatial_stride(tuple(value.shape[1:-1]), min_positions))
    active = is_positive(value)
    if spatial:
        # keepdims=True is the form XNNPACK delegates.
        active = tf.reduce_mean(active, axis=spatial, keepdims=True)
    active = tf.reshape(active, [-1, units])
    return tf.reduce_sum(active, axis=0)
