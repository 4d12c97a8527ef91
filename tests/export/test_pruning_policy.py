"""The in-graph pruning policies run eagerly on small vectors: no model, no conversion."""

import numpy as np
import pytest
import tensorflow as tf

from tflite_fineprune.export.pruning_policy import global_ranking, layerwise, output_by_frequency
from tflite_fineprune.metadata import UnitGroup


def _group(name, units, offset, role="hidden"):
    return UnitGroup(name, "Dense", units, offset, 1, role, 1.0, 1.0)


GROUPS = [_group("a", 4, 0), _group("b", 2, 4), _group("out", 3, 6, "output")]
ACTIVITY = np.array([0.4, 0.1, 0.3, 0.2, 0.05, 0.9, 0.5, 0.01, 0.49], np.float32)


def _run(policy, masks, sparsity):
    return policy(tf.constant(ACTIVITY), tf.constant(masks, tf.float32), tf.constant(sparsity, tf.float32),
                  GROUPS).numpy()


def test_layerwise_prunes_each_layer_to_the_rounded_fraction_and_keeps_one():
    masks = _run(layerwise, np.ones(9), 0.5)
    np.testing.assert_array_equal(masks, [1, 0, 1, 0, 0, 1, 1, 1, 1])  # 2 of 4, 1 of 2; classes untouched
    np.testing.assert_array_equal(_run(layerwise, np.ones(9), 0.999)[:6], [1, 0, 0, 0, 0, 1])


def test_policies_are_cumulative():
    start = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1], np.float32)  # the most active unit of "a" pruned before
    for policy in (layerwise, global_ranking):
        masks = _run(policy, start, 0.25)
        assert masks[0] == 0 and masks[:6].sum() <= 5


def test_global_ranking_ranks_across_layers_and_protects_each_layers_best():
    masks = _run(global_ranking, np.ones(9), 0.5)
    assert masks[:6].sum() == 3  # 3 of the 6 hidden units
    assert masks[0] == 1 and masks[5] == 1  # each layer's most active unit stays
    np.testing.assert_array_equal(masks[6:], 1)


@pytest.mark.parametrize("min_fraction, kept", [(0.2, [1, 0, 1]), (0.99, [1, 0, 0])])
def test_output_by_frequency_keeps_frequent_classes_or_the_most_frequent(min_fraction, kept):
    masks = output_by_frequency(tf.constant(ACTIVITY), tf.ones([9]), tf.constant(min_fraction), GROUPS[2]).numpy()
    np.testing.assert_array_equal(masks[6:], kept)
    np.testing.assert_array_equal(masks[:6], 1)
