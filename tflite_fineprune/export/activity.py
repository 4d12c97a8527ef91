"""How `collect` counts unit activity: the fraction of positions where a unit is > 0.

Its own module so the counting's form, which decides what `collect` costs on
MobileNets (benchmarks/collect_profile.py), stays in one place.
"""

import tensorflow as tf


def is_positive(value, above_minus_one=False):
    """1 where value > 0, else 0, exact for every value > 0.

    For a tensor known to be > -1 (the end of a ReLU, ReLU6, hard-swish, ... chain) that is
    CEIL(min(value, 1)): on (-1, 0] CEIL gives 0. Otherwise CEIL(clip(value, 0, 1)): unary
    ops XNNPACK runs fast. The clamp's lower bound costs an op of its own (the converter
    writes MINIMUM then RELU); dropping it where it cannot matter took the zoo MobileNetV2's
    batch-8 `collect` from 2.0x to 1.6x `infer` (benchmarks/collect_profile.py), and on
    MobileNetV3's hard-swish chains saves one op a group. RELU6(value * 2**100), the form
    before, counted values below about 5e-30 only partially and was no faster; GREATER +
    CAST and SIGN fall outside XNNPACK.
    """
    if above_minus_one:
        return tf.math.ceil(tf.minimum(value, 1.0))
    return tf.math.ceil(tf.clip_by_value(value, 0.0, 1.0))


def per_sample_mean(value, units):
    """Per sample, each unit's mean over positions, as [batch, 1, 1, units] whatever the rank.

    The spatial MEAN with keepdims is the form XNNPACK delegates; one rank for every group lets `batch_sums`
    concatenate the groups and sum them over the batch in one op.
    """
    spatial = list(range(1, len(value.shape) - 1))
    if spatial:
        value = tf.reduce_mean(value, axis=spatial, keepdims=True)
    if len(value.shape) != 4:
        value = tf.reshape(value, [-1, 1, 1, units])
    return value


def count_active(value, units, above_minus_one=False):
    """Per sample and unit, the fraction of positions where it is > 0 ([batch, 1, 1, units]; `batch_sums`)."""
    return per_sample_mean(is_positive(value, above_minus_one), units)


def batch_sums(pieces):
    """One flat vector (mask order) of per-group pieces, each a [batch, 1, 1, units] tensor, summed over the
    batch, or a vector kept as it is.

    Consecutive per-sample pieces are concatenated before the sum: one CONCATENATION and one SUM for a run of
    groups instead of a RESHAPE and a SUM per group (`collect`'s time on MobileNets is largely per-op cost,
    docs/performance.md).
    """
    flat, run = [], []
    for piece in [*pieces, None]:
        if piece is not None and len(piece.shape) == 4:
            run.append(piece)
            continue
        if run:
            flat.append(tf.reduce_sum(tf.concat(run, axis=-1) if len(run) > 1 else run[0], axis=[0, 1, 2]))
            run = []
        if piece is not None:
            flat.append(piece)
    return tf.concat(flat, axis=0) if len(flat) > 1 else flat[0]
