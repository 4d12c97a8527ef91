"""Magnitude pruning: the in-graph score (mean |activation| × outgoing weight norm, BN folded) against numpy."""

import numpy as np
import pytest

from tflite_fineprune import FinePruneError, Personalizer, export_model
from tflite_fineprune.state import decode_model_state, encode_state


def _models():
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(8, 3, padding="same", name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(10, 3, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.LeakyReLU(0.2, name="leaky2")(x)  # negative values: the score takes |activation|
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(12, activation="relu", name="dense")(x)
    outputs = layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for bn in (model.get_layer("bn1"), model.get_layer("bn2")):  # non-trivial statistics to fold
        c = bn.gamma.shape[0]
        bn.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.3, c), rng.normal(0, 0.3, c), rng.uniform(0.3, 3, c)])
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _models()
    path = tmp_path_factory.mktemp("magnitude") / "m.tflite"
    export_model(model, path)
    plain = tmp_path_factory.mktemp("magnitude") / "plain.tflite"
    export_model(model, plain, magnitude_pruning=False)
    x = np.random.default_rng(1).normal(0, 1, (40, 6, 6, 2)).astype(np.float32)
    return model, path, plain, x


def _reference(model, x):
    """Per group (relu1, leaky2, dense): mean |activation| and outgoing norm with the next BN folded, in numpy."""
    import keras

    taps = keras.Model(model.input, [model.get_layer(n).output for n in ("relu1", "leaky2", "dense")])
    acts = [np.asarray(a) for a in taps(x, training=False)]
    means = [np.abs(a).reshape(len(x), -1, a.shape[-1]).mean(axis=1).mean(axis=0) for a in acts]

    def folded(conv, bn):
        gamma, _, _, var = bn.get_weights()
        return conv.get_weights()[0] * (gamma / np.sqrt(var + bn.epsilon))

    k2 = folded(model.get_layer("conv2"), model.get_layer("bn2"))  # 3,3,8,10
    norm1 = np.sqrt(np.sum(k2 ** 2, axis=(0, 1, 3)))
    dense = model.get_layer("dense").get_weights()[0].reshape(4, 4, 10, 12)  # flatten: channels innermost
    norm2 = np.sqrt(np.sum(dense ** 2, axis=(0, 1, 3)))
    norm3 = np.sqrt(np.sum(model.get_layer("logits").get_weights()[0] ** 2, axis=1))
    return means, [norm1, norm2, norm3]


def test_collect_sums_mean_absolute_activation_like_keras(exported):
    model, path, _, x = exported
    p = Personalizer(path)
    p.observe(x)
    state = p.get_state()
    means, _ = _reference(model, x)
    hidden = p.metadata.hidden_groups
    assert [g.name for g in hidden] == ["conv1", "conv2", "dense"]
    for group, expected in zip(hidden, means):
        got = state.magnitudes[group.offset:group.offset + group.units] / state.samples
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    output = p.metadata.output_group
    assert not state.magnitudes[output.offset:output.offset + output.units].any()


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.8])
def test_prune_magnitude_removes_the_lowest_scores_per_layer(exported, sparsity):
    model, path, _, x = exported
    p = Personalizer(path)
    p.observe(x)
    p.prune_magnitude(sparsity)
    masks = p.get_state().masks
    means, norms = _reference(model, x)
    for group, mean, norm in zip(p.metadata.hidden_groups, means, norms):
        score = mean * norm
        expected = np.ones(group.units)
        pruned = min(group.units - 1, int(np.floor(sparsity * group.units + .5)))
        expected[np.argsort(score, kind="stable")[:pruned]] = 0
        np.testing.assert_array_equal(masks[group.offset:group.offset + group.units], expected, err_msg=group.name)


def test_magnitudes_travel_with_the_state_and_reset_clears_them(exported, tmp_path):
    _, path, _, x = exported
    p = Personalizer(path)
    p.observe(x)
    p.prune_magnitude(0.5)
    p.save_state(tmp_path / "u.state")
    blob = (tmp_path / "u.state").read_bytes()
    assert int.from_bytes(blob[8:10], "little") == 4 and int.from_bytes(blob[10:12], "little") & 16
    state = decode_model_state(blob, p.metadata)
    assert encode_state(p.metadata.fingerprint, state) == blob
    q = Personalizer(path)
    q.load_state(tmp_path / "u.state")
    np.testing.assert_array_equal(q.get_state().magnitudes, p.get_state().magnitudes)
    q.reset()
    assert not q.get_state().magnitudes.any()


def test_an_export_without_it_says_so(exported):
    _, _, plain, x = exported
    p = Personalizer(plain)
    assert "prune_magnitude" not in p.metadata.signatures and p.get_state().magnitudes is None
    p.observe(x)
    with pytest.raises(FinePruneError, match="without magnitude pruning"):
        p.prune_magnitude(0.5)


def _evidence(p, state, rate, x):
    """(disagreements, mean total variation, its standard error) of `rate` on `x`, in numpy from the logits."""
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p.set_state(state)
    reference = softmax(p.predict(x).astype(np.float64))
    p.prune_magnitude(rate)
    pruned = softmax(p.predict(x).astype(np.float64))
    p.set_state(state)
    shift = 0.5 * np.abs(reference - pruned).sum(-1)
    return int(np.sum(pruned.argmax(-1) != reference.argmax(-1))), shift.mean(), shift.std(ddof=1) / np.sqrt(len(x))


def _accepted(rule, n, disagreements, shift, error):
    """The stopping rule from its definition: Clopper–Pearson through SciPy's beta quantile."""
    from scipy import stats

    bound = 1.0 if disagreements >= n else stats.beta.ppf(rule.stop_confidence, disagreements + 1, n - disagreements)
    return (1 - disagreements / n >= rule.magnitude_agreement and bound <= rule.stop_max_disagreement
            and shift + 1.645 * error <= rule.stop_max_shift)


RULES = {  # (agreement, max disagreement bound, max shift bound)
    "half agree, no bounds": (0.5, 1.0, 1.0),
    "99 %, no bounds (the rule before the bounds)": (0.99, 1.0, 1.0),
    "default bounds": (0.99, 0.03, 0.03),
    "loose bounds": (0.9, 0.35, 0.12),
}


@pytest.mark.parametrize("name", list(RULES))
def test_personalize_prunes_as_far_as_the_stopping_rule_accepts(exported, name):
    import dataclasses

    from tflite_fineprune.auto_recipe import SPARSITY_STEPS, AutoRule

    _, path, _, x = exported
    agreement, disagreement, shift = RULES[name]
    rule = AutoRule(class_alpha=0.0, dormant_threshold=0.0, magnitude_agreement=agreement,
                    stop_max_disagreement=disagreement, stop_max_shift=shift)
    p = Personalizer(path)
    p.personalize(x, dataclasses.replace(rule, magnitude_agreement=1.01))  # > 1: step 5 off
    before = p.get_state()
    assert before.masks.all()
    report = p.personalize(x, rule)
    q = Personalizer(path)
    evidence = [_evidence(q, before, r, x) for r in SPARSITY_STEPS]
    expected = 0.0
    for rate, measured in zip(SPARSITY_STEPS, evidence):
        if not _accepted(rule, len(x), *measured):
            break
        expected = rate
    q.set_state(before)
    if expected:
        q.prune_magnitude(expected)
    np.testing.assert_array_equal(p.get_state().masks, q.get_state().masks)
    if name == "half agree, no bounds":  # every rate keeps half the predictions
        assert expected == SPARSITY_STEPS[-1] and "every rate kept" in report.sparsity_search
    elif name == "default bounds":  # 0 of 40 bounds the disagreement rate by 7.2 % only: 40 samples prune nothing
        assert expected == 0 and "disagree (≤ 7.2%)" in report.sparsity_search
    else:  # the search stops inside the list
        assert 0 < expected < SPARSITY_STEPS[-1], "; ".join(f"{m[0]} {m[1]:.3f}±{m[2]:.3f}" for m in evidence)
    assert (report.unit_sparsity > 0) == (expected > 0)
    assert f"pruned {expected:.0%}" in report.sparsity_search or (not expected and "nothing pruned" in
                                                                  report.sparsity_search)
    assert ("prune" in report.recipe) == (expected > 0)


def test_a_one_shot_iterator_of_batches_is_enough(exported):
    _, path, _, x = exported
    p = Personalizer(path)
    report = p.personalize(iter([x[:20], x[20:]]))
    assert report.samples == len(x)


def test_the_kotlin_port_tries_the_same_rates():
    import pathlib
    import re

    from tflite_fineprune.auto_recipe import SPARSITY_STEPS

    source = (pathlib.Path(__file__).resolve().parents[2] / "android_demo/core/src/main/kotlin/org/tflitefineprune/core"
              / "AutoRecipe.kt").read_text()
    listed = re.search(r"val SPARSITY_STEPS = listOf\(([^)]*)\)", source).group(1)
    assert tuple(float(v) for v in listed.split(",")) == SPARSITY_STEPS


@pytest.mark.parametrize("classes", [1, 2])
def test_one_class_in_play_is_no_evidence_for_step_5(exported, classes):
    """A rule that accepts anything prunes to the last rate with two classes in play, and not at all with one."""
    import dataclasses

    from tflite_fineprune.auto_recipe import SPARSITY_STEPS, search_sparsity
    from tflite_fineprune.stopping import StoppingRule

    _, path, _, x = exported
    p = Personalizer(path)
    p.reset()
    p.observe(x)
    state = p.get_state()
    output = p.metadata.output_group
    masks = state.masks.copy()
    masks[output.offset + classes:output.offset + output.units] = 0.0
    p.set_state(dataclasses.replace(state, masks=masks))
    rate, explanation = search_sparsity(p, x, StoppingRule(agreement=0.0, max_disagreement=1.0, max_shift=1.0))
    if classes == 1:
        assert rate == 0 and "1 class in play" in explanation
        np.testing.assert_array_equal(p.get_state().masks, masks)
    else:
        assert rate == SPARSITY_STEPS[-1] and p.sparsity().units > 0.5
