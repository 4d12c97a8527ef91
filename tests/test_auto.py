"""The label-free `personalize` and its levers: dormant pruning and the binomial class test vs numpy/SciPy."""

import json
import struct
import zlib

import numpy as np
import pytest
from scipy import stats

from tests.realdata import CIFAR_CLASSES, cifar_images
from tests.cli import cli_output
from tests.test_cli import link_images
from tflite_fineprune import Personalizer
from tflite_fineprune import signatures as sig
from tflite_fineprune import state as state_format
from tflite_fineprune.export.embed import add_metadata
from tflite_fineprune.metadata import METADATA_NAME, read_model_metadata
from tflite_fineprune.auto_recipe import AutoRule, binomial_cdf, class_test, excludable_count


@pytest.mark.parametrize("n,p", [(17, 0.1), (100, 0.1), (60, 0.05), (500, 0.02), (3, 0.5)])
def test_binomial_cdf_equals_scipy(n, p):
    for k in range(-1, n + 2):
        assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n,p,alpha", [(17, 0.1, 0.01), (100, 0.1, 0.01), (250, 0.1, 0.01), (40, 0.05, 0.05)])
def test_excludable_count_is_the_largest_count_the_test_rejects(n, p, alpha):
    k = excludable_count(n, p, alpha)
    assert (k < 0 or stats.binom.cdf(k, n, p) < alpha) and stats.binom.cdf(k + 1, n, p) >= alpha


def test_seventeen_samples_over_ten_classes_exclude_nothing():
    rule = AutoRule()
    for counts in ([2, 2, 2, 2, 2, 2, 2, 1, 1, 1], [5, 4, 3, 2, 1, 1, 1, 0, 0, 0], [3, 3, 3, 3, 3, 2, 0, 0, 0, 0],
                   [4, 4, 4, 4, 1, 0, 0, 0, 0, 0]):
        assert class_test(counts, 17, rule.class_share, rule.class_alpha).max_count == -1


def test_one_predicted_class_needs_more_than_a_handful_of_samples():
    # The pseudo-counts keep a small sample from claiming a single class; 17 samples, all of one class, are
    # strong enough evidence (P(Binomial(17, 0.23) = 0) = 0.012 < α = 0.02), 15 are not (0.028).
    rule = AutoRule()
    assert class_test([15] + [0] * 9, 15, rule.class_share, rule.class_alpha).max_count == -1
    alone = class_test([17] + [0] * 9, 17, rule.class_share, rule.class_alpha)
    assert alone.max_count >= 0 and alone.classes_in_play == 1


@pytest.mark.parametrize("counts", [[90, 85, 8, 5, 4, 3, 2, 2, 1, 0], [40, 38, 35, 20, 12, 3, 2, 0, 0, 0],
                                    [6, 5, 5, 4, 4, 3, 3, 3, 2, 1], [100, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
def test_class_test_is_the_iterated_scipy_test(counts):
    rule = AutoRule()
    n = sum(counts)
    result = class_test(counts, n, rule.class_share, rule.class_alpha)
    present = list(range(10))
    while True:  # the same iteration with SciPy's binomial
        smoothed = np.array([counts[c] + 1.0 for c in present])  # one pseudo-count per class
        f = smoothed / smoothed.sum()
        p_min = rule.class_share * np.sum(f ** 2)
        k = max([j for j in range(n) if stats.binom.cdf(j, n, p_min) < rule.class_alpha], default=-1)
        survivors = [c for c in present if counts[c] > k]
        if not survivors or len(survivors) == len(present):
            break
        present = survivors
    assert (result.max_count, result.classes_in_play) == (k, len(present))


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.7, 1.0])
def test_prune_dormant_equals_numpy(exports, threshold):
    x = cifar_images(per_class=3)
    p = Personalizer(exports.path("dense_only"))
    p.observe(x)
    activity = p.activity
    p.prune_dormant(threshold)
    for group in p.metadata.hidden_groups:
        a = activity[group.name]
        expected = (a >= threshold).astype(np.uint8)
        if not expected.any():
            expected[np.argmax(a)] = 1
        np.testing.assert_array_equal(p.masks[group.name], expected)
    output = p.metadata.output_group
    assert output is None or p.masks[output.name].all()


def test_prune_dormant_is_cumulative_and_keeps_the_model_running(exports):
    x = cifar_images(per_class=3)
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    p.observe(x)
    p.prune_dormant(0.2)
    before = p.get_state().masks
    p.reset(counts=True, masks=False)
    p.observe(x[:5])
    p.prune_dormant(0.0)
    assert np.all(p.get_state().masks <= before)
    assert np.all(np.isfinite(p.predict(x)))


def test_personalize_stays_dense_on_five_samples(exports):
    x = cifar_images(per_class=1)[:5]
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    report = p.personalize(x)
    assert report.recipe.startswith("dense") and "too little data" in str(report)
    assert p.sparsity().pruned_units == 0 and p.samples == 5


def test_class_coverage_against_an_even_spread():
    from tflite_fineprune.auto_recipe import class_coverage

    assert class_coverage([5] * 10) == pytest.approx(10 * (0.1 + 0.9 / 50))  # wider than 50 samples spread evenly
    assert class_coverage([10, 10] + [0] * 8) == pytest.approx(2 * (0.1 + 0.9 / 20))
    assert class_coverage([]) == class_coverage([7]) == class_coverage([0, 0]) == 1.0


def test_personalize_keeps_the_statistics_for_few_samples_of_two_classes(mlperf_resnet8):
    # 20 photos of cats and dogs: too few for the class test to exclude anything, yet a class subset, which the
    # relative BN shift would read as a domain shift (benchmarks/normalization_gate.py).
    x = cifar_images(per_class=10, classes=("cat", "dog")).astype(np.uint8)
    p = Personalizer(mlperf_resnet8)
    report = p.personalize(x, progress=False)
    assert report.excluded_classes == () and report.normalization_strength == 0
    assert "normalization kept: the predictions cover" in str(report)
    assert p.personalize(x, AutoRule(normalization_min_coverage=0), progress=False).normalization_strength > 0


@pytest.mark.parametrize("start", [0, 4, 8])
def test_personalize_keeps_every_class_for_17_samples_over_10_classes(mlperf_resnet8, start):
    # A real classifier (the untrained zoo CNN predicts one class for everything, which is evidence of one class).
    x = cifar_images(per_class=2, start=start)[:17].astype(np.uint8)
    p = Personalizer(mlperf_resnet8)
    report = p.personalize(x, progress=False)
    assert report.excluded_classes == ()
    assert p.masks[p.metadata.output_group.name].all()
    # The open-set guard re-observes the typical samples only: the class counts are theirs.
    assert sum(report.class_counts.values()) == round(17 * report.in_domain_share) >= 15
    assert "rare enough" in report.class_test


def test_personalize_excludes_classes_a_two_class_user_never_shows(exports, tmp_path):
    # 120 images of two classes: a class the model predicts ≤ k times is excluded, with k from the test.
    x = cifar_images(per_class=60, classes=("airplane", "ship"))
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    report = p.personalize(x)
    rule = AutoRule()
    k = class_test(list(report.class_counts.values()), 120, rule.class_share, rule.class_alpha).max_count
    expected = tuple(c for c, n in report.class_counts.items() if n <= k)
    kept_most = max(report.class_counts, key=report.class_counts.get)
    assert report.excluded_classes == tuple(c for c in expected if c != kept_most or len(expected) < 10)
    assert report.excluded_classes and str(report).startswith("recipe:")
    p.save_state(tmp_path / "u.state")
    fresh = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    fresh.load_state(tmp_path / "u.state")
    np.testing.assert_array_equal(fresh.predict(x), p.predict(x))
    p.reset()
    assert p.sparsity().pruned_units == 0


def _as_old_file(path, tmp_path):
    """The same model as an earlier version wrote it: metadata without the new signatures."""
    data = path.read_bytes()
    meta = json.loads(read_model_metadata(data).to_json())
    meta["signatures"] = [s for s in meta["signatures"] if s not in (sig.PRUNE_DORMANT, sig.ADAPT_NORMALIZATION,
                                                                      sig.SET_NORMALIZATION, sig.PRUNE_MAGNITUDE,
                                                                      sig.SET_MAGNITUDES)]
    for newer in ("normalization_layers", "content_sha256", "slim", "quantization"):
        meta.pop(newer)
    old = tmp_path / "old.tflite"
    old.write_bytes(add_metadata(data, METADATA_NAME, json.dumps(meta).encode()))
    return old


def test_model_without_new_signatures_still_personalizes(exports, tmp_path):
    old = _as_old_file(exports.path("plain_cnn", prune_outputs=True), tmp_path)
    p = Personalizer(old)
    report = p.personalize(cifar_images(per_class=60, classes=("airplane", "ship")))
    assert "prune_dormant" in str(report) and report.excluded_classes
    assert p.sparsity().pruned_units == len(report.excluded_classes)


def test_version_1_state_file_is_read(exports, tmp_path):
    x = cifar_images(per_class=3)
    # Version-1 files predate magnitude pruning (version 4): a model without it writes version 2.
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True, magnitude_pruning=False))
    p.observe(x)
    p.prune(0.25)
    blob = bytearray(state_format.encode_state(p.metadata.fingerprint, p.get_state()))
    assert struct.unpack_from("<H", blob, 8)[0] == 2
    struct.pack_into("<H", blob, 8, 1)
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    (tmp_path / "v1.state").write_bytes(bytes(blob))
    fresh = Personalizer(exports.path("plain_cnn", prune_outputs=True, magnitude_pruning=False))
    fresh.load_state(tmp_path / "v1.state")
    np.testing.assert_array_equal(fresh.predict(x), p.predict(x))


def test_cli_personalize_defaults_to_auto(exports, tmp_path):
    user = link_images(tmp_path / "user", ("cat", "dog"), 40, flat=True)
    state = tmp_path / "u.state"
    out = cli_output("personalize", exports.path("plain_cnn", prune_outputs=True), "--data", user, "--state", state)
    assert "recipe:" in out and "class test:" in out and state.exists()
    assert len(CIFAR_CLASSES) == 10


def test_cli_expert_class_fraction_without_sparsity(exports, tmp_path):
    user = link_images(tmp_path / "user", ("cat", "dog"), 20, flat=True)
    state = tmp_path / "u.state"
    out = cli_output("personalize", exports.path("plain_cnn", prune_outputs=True), "--data", user, "--state", state,
                     "--min-class-fraction", 0.2)
    p = Personalizer(exports.path("plain_cnn", prune_outputs=True))
    p.load_state(state)
    hidden = sum(g.units for g in p.metadata.hidden_groups)
    assert "pruned" in out and not p.get_state().masks[:hidden].size - p.get_state().masks[:hidden].sum()
    assert p.activity["classes"][p.masks["classes"] == 0].max(initial=0) < 0.2


# -- step 5's stopping rule (tflite_fineprune/stopping.py) ----------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 10, 15, 40, 200, 500])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_disagreement_bound_is_scipys_clopper_pearson(n, confidence):
    from tflite_fineprune.stopping import disagreement_upper_bound

    for k in sorted({0, 1, n // 10, n // 2, n - 1} - {n}):
        assert disagreement_upper_bound(k, n, confidence) == pytest.approx(
            stats.beta.ppf(confidence, k + 1, n - k), rel=1e-9, abs=1e-15), (k, n)
    assert disagreement_upper_bound(n, n, confidence) == 1.0


def test_zero_disagreements_bound_the_rate_by_what_n_supports():
    from tflite_fineprune.stopping import disagreement_upper_bound

    assert disagreement_upper_bound(0, 15, 0.95) == pytest.approx(1 - 0.05 ** (1 / 15))  # the 18 %
    assert [round(disagreement_upper_bound(0, n, 0.95), 4) for n in (15, 150, 500)] == [0.181, 0.0198, 0.006]


def test_evidence_is_numpys_disagreements_and_total_variation():
    from tflite_fineprune.stopping import measure, posteriors

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (57, 7)).astype(np.float32)
    pruned_logits = logits + rng.normal(0, 0.7, logits.shape).astype(np.float32)
    reference, pruned = posteriors(logits, "logits"), posteriors(pruned_logits, "logits")
    np.testing.assert_allclose(reference, np.exp(logits) / np.exp(logits.astype(np.float64)).sum(-1, keepdims=True),
                               rtol=1e-6)
    evidence = measure(0.4, reference, pruned)
    shift = 0.5 * np.abs(reference - pruned).sum(-1)
    assert evidence.disagreements == int(np.sum(logits.argmax(-1) != pruned_logits.argmax(-1))) > 0
    assert evidence.shift_mean == pytest.approx(shift.mean(), rel=1e-12)
    assert evidence.shift_error == pytest.approx(stats.sem(shift), rel=1e-12)
    np.testing.assert_array_equal(posteriors(reference.astype(np.float32), "probabilities"),
                                  reference.astype(np.float32).astype(np.float64))


def test_one_class_in_play_or_few_samples_are_no_evidence():
    from tflite_fineprune.stopping import Evidence, StoppingRule

    rule = StoppingRule()
    clean = Evidence(0.5, 15, 0, 0.0, 0.0)
    assert not rule.accepts(clean, classes_in_play=10)  # 0 of 15 bounds the rate by 18 %
    assert not rule.accepts(Evidence(0.5, 298, 0, 0.0, 0.0), classes_in_play=10)  # 0 of 298: 1.0002 %
    assert rule.accepts(Evidence(0.5, 299, 0, 0.0, 0.0), classes_in_play=10)  # 0 of 299: 0.997 % ≤ 1 %
    assert rule.accepts(Evidence(0.5, 500, 1, 0.0, 0.0), classes_in_play=10)  # 1 of 500: 0.95 %
    assert not rule.accepts(Evidence(0.5, 500, 2, 0.0, 0.0), classes_in_play=10)  # 2 of 500: 1.25 %
    assert not rule.accepts(Evidence(0.5, 500, 0, 0.0, 0.0), classes_in_play=1)  # a one-class model always agrees
    assert not rule.accepts(Evidence(0.5, 500, 0, 0.025, 0.005), classes_in_play=10)  # 0.025 + 1.645 × 0.005 > 0.03


def _kotlin(name):
    import pathlib

    return (pathlib.Path(__file__).resolve().parents[1] / "android_demo/core/src/main/kotlin/org/tflitefineprune/core"
            / name).read_text()


def test_the_kotlin_rule_has_the_same_fields_defaults_and_constants():
    import dataclasses
    import re

    from tflite_fineprune.stopping import BISECTION_STEPS, StoppingRule

    source = _kotlin("AutoRecipe.kt")
    keys = re.findall(r'"(\w+)"', re.search(r"val KEYS = listOf\(([^)]*)\)", source).group(1))
    assert keys == [f.name for f in dataclasses.fields(AutoRule)]
    for field in dataclasses.fields(AutoRule):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), field.name)
        declared = re.search(rf"val {camel}: \w+ = ([\d.]+),", source)
        assert declared and float(declared.group(1)) == field.default, field.name
    stopping = _kotlin("Stopping.kt")
    assert f"const val BISECTION_STEPS = {BISECTION_STEPS}" in stopping
    for field in dataclasses.fields(StoppingRule):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), field.name)
        assert re.search(rf"val {camel}: Double = {field.default},", stopping), field.name
