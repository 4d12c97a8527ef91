"""In-graph pruning policies: TF ops that turn activity and masks into new masks.

They run inside the exported `prune` signature, so only TFLite builtins are
used (TOPK_V2, SCATTER_ND, SELECT_V2, arithmetic). Every policy is
cumulative (a pruned unit stays pruned) and keeps at least one unit per layer.
The number of units pruned in a layer of n units at sparsity s is
floor(s * n + 0.5), i.e. s * n rounded half up.
"""

import tensorflow as tf

from ..metadata import POLICY_NAMES, ROLE_HIDDEN

PRUNED_SCORE = -1.0  # below any activity, so pruned units rank first
PROTECTED_SCORE = 2.0  # above any activity, so a protected unit ranks last


def target_count(sparsity, units):
    return tf.floor(sparsity * float(units) + 0.5)


def _keep_highest(scores, prune_count):
    """0/1 vector that zeroes the `prune_count` lowest scores (ties: lower index first)."""
    n = int(scores.shape[0])
    _, order = tf.math.top_k(-scores, k=n, sorted=True)
    ranks = tf.scatter_nd(tf.expand_dims(order, 1), tf.range(n, dtype=tf.int32), [n])
    return tf.cast(tf.cast(ranks, tf.float32) >= prune_count, tf.float32)


def _scores(activity, masks):
    return tf.where(masks > 0.5, activity, tf.fill(tf.shape(activity), PRUNED_SCORE))


def layerwise(activity, masks, sparsity, groups):
    """Prune the least active units of each hidden layer to the same fraction."""
    pieces = []
    for group in groups:
        a = activity[group.offset:group.offset + group.units]
        m = masks[group.offset:group.offset + group.units]
        if group.role != ROLE_HIDDEN or group.units < 2:
            pieces.append(m)
            continue
        already = float(group.units) - tf.reduce_sum(m)
        count = tf.minimum(tf.maximum(already, target_count(sparsity, group.units)), float(group.units - 1))
        pieces.append(_keep_highest(_scores(a, m), count))
    return tf.concat(pieces, axis=0)


def global_ranking(activity, masks, sparsity, groups):
    """Rank all hidden units together by activity; each layer's most active unit is protected."""
    hidden = [g for g in groups if g.role == ROLE_HIDDEN]
    total = sum(g.units for g in hidden)
    scores, kept = [], []
    for group in hidden:
        a = activity[group.offset:group.offset + group.units]
        m = masks[group.offset:group.offset + group.units]
        s = _scores(a, m)
        best = tf.one_hot(tf.argmax(s), group.units, dtype=tf.float32)
        scores.append(tf.where(best > 0.5, tf.fill(tf.shape(s), PROTECTED_SCORE), s))
        kept.append(m)
    scores = tf.concat(scores, axis=0)
    already = float(total) - tf.reduce_sum(tf.concat(kept, axis=0))
    count = tf.minimum(tf.maximum(already, target_count(sparsity, total)), float(total - len(hidden)))
    new_hidden = _keep_highest(scores, count)
    pieces, start = [], 0
    for group in groups:
        if group.role == ROLE_HIDDEN:
            pieces.append(new_hidden[start:start + group.units])
            start += group.units
        else:
            pieces.append(masks[group.offset:group.offset + group.units])
    return tf.concat(pieces, axis=0)


def output_by_frequency(activity, masks, min_fraction, group):
    """Mask classes predicted on fewer than `min_fraction` of samples; keep the most frequent."""
    a = activity[group.offset:group.offset + group.units]
    m = masks[group.offset:group.offset + group.units]
    keep = tf.cast(a >= min_fraction, tf.float32) * m
    best = tf.one_hot(tf.argmax(_scores(a, m)), group.units, dtype=tf.float32)
    keep = tf.where(tf.reduce_sum(keep) > 0.5, keep, best)
    return tf.concat([masks[:group.offset], keep, masks[group.offset + group.units:]], axis=0)


POLICIES = dict(zip(POLICY_NAMES, (layerwise, global_ranking)))
