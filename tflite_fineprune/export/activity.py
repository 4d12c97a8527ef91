"""How `collect` counts unit activity: the fraction of positions where a unit is > 0.

Its own module so the counting's form, which decides what `collect` costs on
MobileNets (benchmarks/collect_profile.py), stays in one place.
"""

import tensorflow as tf


def is_positive(value, non_negative=False):
    """1 where value > 0, else 0, exact for every value > 0.

    For a tensor known to be >= 0 (a ReLU/ReLU6 chain's end) that is CEIL(min(value, 1)),
    otherwise CEIL(clip(value, 0, 1)): unary ops XNNPACK runs fast. The clamp's lower
    bound costs a pass of its own (the converter writes MINIMUM then RELU); dropping it
    where it cannot matter took the zoo MobileNetV2's batch-8 `collect` from 2.0x to
    1.6x `infer` (benchmarks/collect_profile.py). RELU6(value * 2**100), the form
    before, counted values below about 5e-30 only partially and was no faster;
    GREATER + CAST falls outside XNNPACK.
    """
    if non_negative:
        return tf.math.ceil(tf.minimum(value, 1.0))
    return tf.math.ceil(tf.clip_by_value(value, 0.0, 1.0))


def count_active(value, units, non_negative=False):
    """Per unit, the sum over the batch of the fraction of positions where it is > 0."""
    spatial = list(range(1, len(value.shape) - 1))
    active = is_positive(value, non_negative)
    if spatial:
        # keepdims=True is the form XNNPACK delegates.
        active = tf.reduce_mean(active, axis=spatial, keepdims=True)
    active = tf.reshape(active, [-1, units])
    return tf.reduce_sum(active, axis=0)
