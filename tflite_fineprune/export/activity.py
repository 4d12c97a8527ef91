"""How `collect` counts unit activity: the fraction of positions where a unit is > 0.

Its own module so the counting's form, which decides what `collect` costs on
MobileNets (benchmarks/collect_profile.py), stays in one place.
"""

import tensorflow as tf


def is_positive(value):
    """1 where value > 0, else 0, as a clamp to [0, 1] and a CEIL.

    Both are unary ops XNNPACK runs fast. The earlier form, RELU6(value * 2**100),
    made `collect` about twice as slow on MobileNetV2 (benchmarks/collect_profile.py)
    and counted positive values below about 5e-30 only partially; GREATER + CAST
    falls outside XNNPACK altogether.
    """
    return tf.math.ceil(tf.clip_by_value(value, 0.0, 1.0))


def count_active(value, units):
    """Per unit, the sum over the batch of the fraction of positions where it is > 0."""
    spatial = list(range(1, len(value.shape) - 1))
    active = is_positive(value)
    if spatial:
        # keepdims=True is the form XNNPACK delegates.
        active = tf.reduce_mean(active, axis=spatial, keepdims=True)
    active = tf.reshape(active, [-1, units])
    return tf.reduce_sum(active, axis=0)
