"""Step 5 layer by layer (tflite_fineprune/layer_search.py) on a small BN convnet, against its definition."""

import dataclasses

import numpy as np
import pytest

from tests.levers.test_magnitude import _models
from tflite_fineprune import Personalizer, export_model
from tflite_fineprune.layer_search import compose, rate_ladder, search_layerwise
from tflite_fineprune.auto_recipe import SPARSITY_STEPS, AutoRule
from tflite_fineprune.sparsity import measure_sparsity
from tflite_fineprune.stopping import StoppingRule, measure, posteriors


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(personalizer as steps 2–4 leave it, its state, the samples): the model every candidate is measured against."""
    path = tmp_path_factory.mktemp("layer_search") / "m.tflite"
    export_model(_models(), path)
    # 400 samples: 0 of 400 bound the disagreement by 0.75 %, under the default rule's 1 % (200 would allow no prune)
    x = np.random.default_rng(1).normal(0, 1, (400, 6, 6, 2)).astype(np.float32)
    p = Personalizer(path)
    p.personalize(x, AutoRule(class_alpha=0.0, dormant_threshold=0.0, magnitude_agreement=2.0))  # step 5 off
    return p, p.get_state(), x


def test_the_ladder_at_one_level_for_every_layer_is_prune_magnitude(reference):
    p, base, _ = reference
    p.set_state(base)
    ladder = rate_ladder(p, SPARSITY_STEPS)
    np.testing.assert_array_equal(p.get_state().masks, base.masks)  # the ladder leaves the model as it was
    groups = p.metadata.hidden_groups
    for level, rate in enumerate(SPARSITY_STEPS):
        p.prune_magnitude(rate)
        np.testing.assert_array_equal(compose(base.masks, ladder, groups, [level] * len(groups)), p.get_state().masks)
        p.set_state(base)
    mixed = compose(base.masks, ladder, groups, [2, -1, 0])  # one layer at 30 %, one untouched, one at 10 %
    for group, count in zip(groups, (round(0.3 * groups[0].units), 0, round(0.1 * groups[2].units))):
        assert int(group.units - mixed[group.offset:group.offset + group.units].sum()) == count


def _evidence(p, base, masks, x):
    reference = posteriors(p.predict(x), p.metadata.output_kind)
    p.set_state(dataclasses.replace(base, masks=masks))
    pruned = posteriors(p.predict(x), p.metadata.output_kind)
    p.set_state(base)
    return measure(0.0, reference, pruned)


@pytest.mark.parametrize("rule", [StoppingRule(), StoppingRule(0.9, 0.95, 0.35, 0.12)], ids=["default", "loose"])
def test_the_masks_kept_pass_the_rule_and_each_closed_layer_failed_it(reference, rule):
    p, base, x = reference
    p.set_state(base)
    found = search_layerwise(p, x, rule)
    kept = p.get_state().masks
    assert rule.accepts(_evidence(p, base, kept, x), 4)
    assert found.macs == pytest.approx(measure_sparsity(p.metadata, kept).macs)
    assert found.macs > 0 and len(set(found.rates)) > 1  # layers end at different rates
    ladder = rate_ladder(p, SPARSITY_STEPS)
    groups = p.metadata.hidden_groups
    levels = [SPARSITY_STEPS.index(r) if r else -1 for r in found.rates]
    np.testing.assert_array_equal(compose(base.masks, ladder, groups, levels), kept)
    for name, rate, evidence in found.stops:  # that layer one rate further (or more) broke the rule
        i = [g.name for g in groups].index(name)
        assert SPARSITY_STEPS.index(rate) > levels[i] and not rule.accepts(evidence, 4)
    assert found.passes >= len(found.steps) + len(found.stops)  # every step and every stop was measured


def test_a_rule_that_accepts_anything_prunes_every_layer_to_the_last_rate_and_one_class_prunes_nothing(reference):
    p, base, x = reference
    anything = StoppingRule(agreement=0.0, max_disagreement=1.0, max_shift=1.0)
    p.set_state(base)
    found = search_layerwise(p, x, anything)
    assert not found.stops and min(found.rates) >= 0.85  # (a rate that prunes no further unit is not named)
    top = p.get_state().masks
    p.set_state(base)
    p.prune_magnitude(SPARSITY_STEPS[-1])
    np.testing.assert_array_equal(top, p.get_state().masks)
    output = p.metadata.output_group
    one = base.masks.copy()
    one[output.offset + 1:output.offset + output.units] = 0.0
    p.set_state(dataclasses.replace(base, masks=one))
    found = search_layerwise(p, x, anything)
    assert found.passes == 0 and set(found.rates) == {0.0}
    np.testing.assert_array_equal(p.get_state().masks, one)
    p.set_state(base)
