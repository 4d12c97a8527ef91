"""The in-graph `prune` policy: how many, which, cumulative, keep-one, exact zeros."""

import math

import numpy as np
import pytest

from tests import zoo
from tflite_fineprune import Personalizer


def expected_count(sparsity, units):
    return min(units - 1, math.floor(sparsity * units + 0.5))


@pytest.mark.parametrize("name", ["plain_cnn", "dense_only", "residual_separable", "conv1d_audio"])
@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5])
def test_layerwise_prunes_least_active(exports, inputs, name, sparsity):
    x = inputs(name, count=30)
    personalizer = Personalizer(exports.path(name))
    personalizer.observe(x)
    activity = personalizer.activity
    result = personalizer.prune(sparsity)
    masks = personalizer.masks
    total = 0
    for group in personalizer.groups:
        mask, act = masks[group.name], activity[group.name]
        pruned = int(np.sum(mask == 0))
        assert pruned == expected_count(sparsity, group.units), group.name
        total += pruned
        if pruned:
            assert act[mask == 0].max() <= act[mask == 1].min(), group.name
    units = sum(g.units for g in personalizer.groups)
    assert abs(total - round(sparsity * units)) <= len(personalizer.groups)
    assert result.pruned_units == total
    assert result.units == pytest.approx(total / units)


def test_prune_is_cumulative_and_keeps_one(exports, inputs):
    x = inputs("plain_cnn", count=30)
    personalizer = Personalizer(exports.path("plain_cnn"))
    personalizer.observe(x)
    personalizer.prune(0.5)
    first = personalizer.masks
    personalizer.prune(0.2)  # lower target: nothing comes back
    assert all(np.array_equal(first[k], v) for k, v in personalizer.masks.items())
    personalizer.reset(counts=True, masks=False)
    personalizer.observe(inputs("plain_cnn", count=30, seed=1))  # new data, new ranking
    personalizer.prune(0.7)
    for name, mask in personalizer.masks.items():
        assert np.all(mask <= first[name]), "a pruned unit came back"
    personalizer.prune(0.999)
    for group in personalizer.groups:
        assert personalizer.masks[group.name].sum() == 1


@pytest.mark.parametrize("name", ["dense_only", "plain_cnn", "residual_separable", "conv1d_audio"])
def test_masked_units_output_exactly_zero(exports, inputs, name):
    """Pruned model == Keras model whose pruned units are zeroed through their weights."""
    model = exports.model(name)
    x = inputs(name, count=30)
    personalizer = Personalizer(exports.path(name))
    personalizer.observe(x)
    personalizer.prune(0.4)
    reference = zoo.zero_units(model, personalizer.masks)
    expected = np.asarray(reference(x, training=False))
    dense = np.asarray(model(x, training=False))
    got = personalizer.predict(x)
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert np.max(np.abs(got - dense)) > 1e-3  # pruning did change the model


def test_global_policy_ranks_across_layers(exports, inputs):
    x = inputs("plain_cnn", count=30)
    personalizer = Personalizer(exports.path("plain_cnn", policy="global"))
    assert personalizer.metadata.policy == "global"
    personalizer.observe(x)
    activity = personalizer.activity
    personalizer.prune(0.3)
    masks = personalizer.masks
    units = sum(g.units for g in personalizer.groups)
    pruned = sum(int(np.sum(m == 0)) for m in masks.values())
    assert pruned == math.floor(0.3 * units + 0.5)
    pruned_act = np.concatenate([activity[k][masks[k] == 0] for k in masks])
    # Every kept unit except each layer's protected most-active one is at least as active.
    kept = []
    for k in masks:
        alive = activity[k][masks[k] == 1]
        kept.extend(sorted(alive)[:-1])
    if kept:
        assert pruned_act.max() <= min(kept)
    assert all(m.sum() >= 1 for m in masks.values())


def test_output_pruning_excludes_classes(exports, inputs):
    """Pruned classes are never predicted; logits go far below, probabilities renormalize."""
    for name in ("plain_cnn", "dense_only"):  # logits, softmax probabilities
        personalizer = Personalizer(exports.path(name, prune_outputs=True))
        group = personalizer.metadata.output_group
        assert group is not None and group.role == "output"
        x = inputs(name, count=40)
        before = personalizer.predict(x)
        personalizer.observe(x)
        frequency = personalizer.activity[group.name]
        assert frequency.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(frequency, np.bincount(before.argmax(1), minlength=group.units) / len(x),
                                   atol=1e-6)
        personalizer.prune_outputs(0.2)
        kept = personalizer.masks[group.name]
        # Exactly the classes predicted on ≥ 20% of the samples; when none is, only the most frequent one.
        expected = frequency >= np.float32(0.2)
        if not expected.any():
            expected = np.arange(group.units) == np.argmax(frequency)
        np.testing.assert_array_equal(kept == 1, expected)
        after = personalizer.predict(x)
        assert set(after.argmax(1)) <= set(np.flatnonzero(kept))
        if personalizer.metadata.output_kind == "probabilities":
            np.testing.assert_allclose(after.sum(1), 1.0, atol=1e-5)
            assert np.all(after[:, kept == 0] == 0)
        else:
            assert np.all(after[:, kept == 0] < -1e8)
            np.testing.assert_allclose(after[:, kept == 1], before[:, kept == 1], atol=1e-5)


def test_mean_compensation_fills_pruned_units_with_their_mean(exports, inputs, tmp_path):
    """A pruned unit outputs exactly its mean activation over the data seen before pruning."""
    model = exports.model("plain_cnn")
    x = inputs("plain_cnn", count=40)
    personalizer = Personalizer(exports.path("plain_cnn", mean_compensation=True))
    assert personalizer.metadata.mean_compensation
    np.testing.assert_allclose(personalizer.predict(x), np.asarray(model(x)), atol=1e-4)
    personalizer.observe(x[:20])
    personalizer.prune(0.4)
    state = personalizer.get_state()
    names = [g.name for g in personalizer.groups]
    values = zoo.keras_mean_activation(model, names, x[:20])
    for group in personalizer.groups:
        mask = state.masks[group.offset:group.offset + group.units]
        fill = state.fill[group.offset:group.offset + group.units]
        assert np.all(fill[mask == 1] == 0)
        np.testing.assert_allclose(fill[mask == 0], values[group.name][mask == 0], atol=1e-4)
    # Re-observing: a pruned unit's output is the constant fill, so its mean stays the fill.
    personalizer.reset(counts=True, masks=False)
    personalizer.observe(x[20:])
    again = personalizer.get_state()
    pruned = state.masks == 0
    np.testing.assert_allclose(again.sums[pruned] / again.samples, state.fill[pruned], atol=1e-6)
    np.testing.assert_array_equal(again.fill, state.fill)  # frozen at pruning time
    zero_fill = Personalizer(exports.path("plain_cnn"))
    zero_fill.observe(x[:20])
    zero_fill.prune(0.4)
    np.testing.assert_array_equal(zero_fill.get_state().masks, state.masks)
    assert np.max(np.abs(zero_fill.predict(x) - personalizer.predict(x))) > 1e-4
