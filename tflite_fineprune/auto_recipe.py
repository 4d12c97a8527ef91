"""The automatic recipe behind `Personalizer.personalize`: the label-free choice of levers and thresholds,
host-side glue small enough to port to Kotlin (`AutoRecipe.kt`). `AutoRule` holds its parameters.

"Recipe" means one way to personalize a user's copy of the model throughout: this automatic one, the named ones
of `population/recipes.py` and of the converters' evaluation, the Android manifest's.

Every step is an in-graph signature; this module only decides which to call
and with which threshold, from numbers the model itself counted:

1. Too few samples (< `min_samples`) → stay dense and say so.
2. Classes: exclude class c only if it was predicted so rarely over n samples
   that a user who really meets c would almost surely have shown it:
   P(Binomial(n, p_min) ≤ count_c) < `class_alpha`, where "really meets"
   means a prior of at least p_min = `class_share` / K: a fraction of an even
   share among the K classes the user effectively holds. K is the effective
   number of predicted classes, 1 / Σ f_c² over the prediction frequencies
   f_c of the classes still in play, each count plus one pseudo-count (10
   for an even spread over 10 classes, about 2 when two classes dominate; the
   pseudo-counts keep a small sample from claiming a single class). Starting from all classes, the test is
   repeated over the survivors until nothing changes. With 17 samples spread
   over 10 classes, p_min ≈ 0.05 and a never-predicted class has probability
   ≈ 0.95¹⁷ = 0.42, so nothing is excluded (`prune_outputs`). α = 0.02: a
   user who holds every class loses one in a few percent of cases (a class the
   model rarely predicts), at a cost of about 0.1 point, while class-subset
   users shed the classes they are confused with (benchmarks/class_test.py).
3. Hidden units: prune those active on less than `dormant_threshold` of the
   user's (sample, position) pairs (`prune_dormant`) — an over-parameterized
   model sheds many, a compact one few or none.
4. Normalization: when no class was excluded (the shift looks like a
   different speaker or microphone, not a different set of classes), shift
   the BatchNorm statistics by `normalization_strength` relative to the
   export's reference pool (`adapt_normalization`). With classes excluded the
   user's BN moments mostly reflect the class subset, which relative AdaBN
   would mistake for a domain shift.
5. Sparsity (models with `prune_magnitude`): how far to prune is decided per
   user from the unlabeled samples alone, with evidence that scales with their
   number. With the model as steps 2–4 left it as the reference, try each rate
   of `SPARSITY_STEPS` in turn (`prune_magnitude`: each layer's units with the
   lowest mean |activation| × outgoing weight norm) and keep the largest rate
   the stopping rule accepts (`stopping.StoppingRule`): the pruned model still
   predicts the reference's class on ≥ `magnitude_agreement` of the samples,
   the 95 % Clopper–Pearson upper bound on its disagreement rate is
   ≤ `stop_max_disagreement` (0 of 15 samples bound it by 18 % only, so a user
   with fewer than 299 samples is not pruned here), and the mean total
   variation between the two predicted distributions plus 1.645 standard
   errors is ≤ `stop_max_shift`. The first rate it rejects ends the search.
   With one class in play (every other excluded) any model agrees: nothing is
   pruned. A compact model disagrees at once and stays as it was (the no-harm
   rule), an over-parameterized one with enough samples goes far
   (benchmarks/stopping_rule.py, docs/personalization.md "How far to prune").

Before step 2, the open-set guard (`open_set.py`) sets aside the samples whose
typicality (collect's distance from the export's BN reference pool) is > 1
from every step (the rest is re-observed alone), and those the model files in
a catch-all class (`_unknown_`, `_silence_`) from the class test and step 5;
too few in-domain samples leave the model dense.

docs/personalization.md has the measurements behind each default.
"""

import dataclasses

import numpy as np

from . import open_set
from . import signatures as sig
from .stopping import StoppingRule, binomial_cdf, measure, posteriors


@dataclasses.dataclass(frozen=True)
class AutoRule:
    """The thresholds of `Personalizer.personalize` (the steps in this module's docstring; docs/personalization.md).

    Attributes
    ----------
    min_samples : int
        Step 1: with fewer observed samples the model stays dense.
    class_share : float
        Step 2: a class "really met" has a prior of at least `class_share` / K (K: the effective number of
        predicted classes).
    class_alpha : float
        Step 2: a class is excluded when a user who really meets it would show it this rarely with probability
        below `class_alpha`.
    dormant_threshold : float
        Step 3: hidden units active on less than this share of (sample, position) pairs are pruned.
    normalization_strength : float
        Step 4: the relative BatchNorm shift, in [0, 1] (0 turns the step off).
    normalization_passes : int
        Step 4: passes over the data, each measuring through the network the pass before adapted.
    magnitude_agreement : float
        Step 5: the share of samples on which the pruned model must predict the class the model before pruning
        predicts (> 1 turns step 5 off).
    stop_confidence : float
        Step 5: the confidence of the upper bounds below.
    stop_max_disagreement : float
        Step 5: the largest accepted upper bound on the disagreement rate (≥ 1 turns the bound off).
    stop_max_shift : float
        Step 5: the largest accepted upper bound on the mean total variation between the two predicted
        distributions (≥ 1 turns the bound off).
    min_in_domain_share : float
        The open-set guard: with a smaller share of in-domain samples (or fewer than `min_samples` of them) the
        model stays dense; < 0 turns the guard off.
    normalization_min_coverage : float
        Step 4 shifts the BatchNorm statistics only when the predictions cover at least this share of the
        classes that a user of every class would show with as many samples (`class_coverage`); 0 turns it off.
    """

    min_samples: int = 10
    class_share: float = 0.5
    class_alpha: float = 0.02  # benchmarks/class_test.py: 0.01 kept CIFAR's confusable spurious classes
    dormant_threshold: float = 0.01
    normalization_strength: float = 0.3
    # 1: every BN layer's user moments measured through the unadapted network, like the reference.
    # p > 1: p - 1 more passes, each measuring through the network adapted by the pass before
    # (approaches the layer-by-layer re-estimation of the finding; costs p passes over the data).
    # One pass over-corrects: a layer's shift repeats what the layers before it already corrected.
    normalization_passes: int = 3
    # Step 5 (tflite_fineprune/stopping.py): the share of the user's samples on which the pruned model must
    # still predict what the model before pruning predicts (> 1 turns step 5 off), and the upper confidence
    # bounds that scale the evidence with the number of samples (benchmarks/stopping_rule.py; ≥ 1 turns a
    # bound off: the rule before them, benchmarks/stopping_probe.py).
    magnitude_agreement: float = 0.99
    stop_confidence: float = 0.95
    stop_max_disagreement: float = 0.01
    stop_max_shift: float = 0.03
    # The open-set guard (open_set.py): below this share of in-domain samples (or fewer than min_samples of
    # them) the model stays dense; < 0 turns the guard off (every sample counts, as before issue 22).
    min_in_domain_share: float = 0.1
    # Step 4 shifts the BN statistics only when the predictions cover at least this share of the classes a user
    # of every class would show with as many samples (`class_coverage`); 0 turns the check off.
    # benchmarks/normalization_gate.py: CIFAR users with 3–25 samples −3.5 → −0.2 points, speakers +2.3 → +1.8.
    normalization_min_coverage: float = 0.8

    def stopping_rule(self):
        """Step 5's `StoppingRule` with these fields."""
        return StoppingRule(self.magnitude_agreement, self.stop_confidence, self.stop_max_disagreement,
                            self.stop_max_shift)


# The rates step 5 tries, in order (each layer's share of units pruned). It starts at 10 %: smaller steps
# removed under 1 % of a compact model's MACs and cost accuracy (benchmarks/stopping_probe.py). AutoRecipe.kt
# keeps the same list (tests/test_auto.py checks).
SPARSITY_STEPS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def excludable_count(n, class_prior, alpha):
    """The largest prediction count k with P(Binomial(n, class_prior) ≤ k) < alpha, or -1 when none."""
    k = -1
    while k + 1 < n and binomial_cdf(k + 1, n, class_prior) < alpha:
        k += 1
    return k


@dataclasses.dataclass(frozen=True)
class ClassTest:
    """The outcome of the iterated binomial test: classes predicted ≤ `max_count` times are excluded."""

    samples: int
    classes_in_play: int
    effective_classes: float
    min_prior: float
    max_count: int
    p_value: float
    rounds: int

    def __str__(self):
        if self.max_count < 0:
            return (f"no count of {self.samples} samples is rare enough: P(Binomial({self.samples}, "
                    f"{self.min_prior:.3g}) = 0) = {self.p_value:.3g} ≥ α")
        return (f"exclude classes predicted ≤ {self.max_count} times of {self.samples}: "
                f"P(Binomial({self.samples}, {self.min_prior:.3g}) ≤ {self.max_count}) = {self.p_value:.3g} < α "
                f"({self.classes_in_play} classes in play, {self.effective_classes:.2f} effective, "
                f"after {self.rounds} rounds)")


def effective_classes(counts):
    """1 / Σ f², f = each class's share of the predictions plus one pseudo-count each (inverse Simpson index)."""
    counts = np.asarray(counts, np.float64) + 1.0
    return float(counts.sum() ** 2 / np.sum(counts * counts))


def class_coverage(counts):
    """How widely the predictions spread, against a user of every class with as many samples (1: as wide).

    The inverse Simpson index of the raw counts, Σc² / (Σc)² inverted, over its expected value when n samples
    are spread evenly over the K classes, 1 / (1/K + (1 − 1/K)/n). A class-subset user scores low even when
    too few samples let the class test exclude nothing; 1.0 without counts.
    """
    counts = np.asarray(counts, np.float64)
    n, k = float(counts.sum()), len(counts)
    if n <= 0 or k < 2:
        return 1.0
    return float(n * n / np.sum(counts * counts) * (1.0 / k + (1.0 - 1.0 / k) / n))


def class_test(counts, n, share, alpha):
    """Iterate the binomial test (module docstring) over per-class prediction counts; a `ClassTest`."""
    counts = np.asarray(counts)
    present = np.ones(len(counts), bool)
    rounds = 0
    while True:
        rounds += 1
        p_min = min(0.999, share * effective_classes(counts[present]) ** -1.0)
        k = excludable_count(n, p_min, alpha)
        survivors = present & (counts > k)
        if not survivors.any() or survivors.sum() == present.sum():
            break
        present = survivors
    p_value = binomial_cdf(max(k, 0), n, p_min)
    return ClassTest(int(n), int(present.sum()), effective_classes(counts[present]), p_min, k, p_value, rounds)


@dataclasses.dataclass
class PersonalizationReport:
    """What `personalize` chose, and the label-free evidence behind it (`str()` of it is the CLI's report).

    Attributes
    ----------
    recipe : str
        The steps taken, e.g. "exclude 7 classes + prune units active < 0.01", or why the model stayed dense.
    samples : int
        The unlabeled samples observed.
    class_counts : dict
        Class label → how many samples the model predicted as it (empty without an output group).
    excluded_classes : tuple of str
        The labels of the classes pruned.
    class_test : str
        The class test's outcome, in words.
    units_pruned : dict
        Hidden group name → units pruned.
    unit_sparsity : float
        Fraction of all units (hidden and output) pruned, in [0, 1].
    weights_removed : float
        Fraction of the weights removed, in [0, 1].
    macs_removed : float
        Fraction of the multiply-accumulates per inference removed, in [0, 1].
    normalization_strength : float
        The BatchNorm shift applied (0: the trained statistics).
    notes : tuple of str
        What the recipe could not do, and why.
    total_units : int
        Hidden and output units: what `unit_sparsity` is a fraction of.
    sparsity_search : str
        Step 5's outcome, in words.
    in_domain_share : float
        The share of the samples the open-set guard counted as the model's world (1.0 when not measured).
    open_set : str
        The guard's measurement and what it changed, in words.
    """

    recipe: str
    samples: int
    class_counts: dict
    excluded_classes: tuple
    class_test: str
    units_pruned: dict
    unit_sparsity: float
    weights_removed: float
    macs_removed: float
    normalization_strength: float
    notes: tuple
    total_units: int = 0  # hidden and output units: what unit_sparsity is a fraction of
    sparsity_search: str = "not run"
    in_domain_share: float = 1.0  # the share of the samples the open-set guard counted as in-domain
    open_set: str = "not run"  # what the guard measured and changed

    def __str__(self):
        lines = [f"recipe: {self.recipe} (from {self.samples} unlabeled samples)",
                 f"in-domain: {self.open_set}"]
        if self.class_counts:
            lines.append("predicted classes: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()))
        lines.append(f"class test: {self.class_test}")
        # Unit sparsity counts the output units too: an excluded class is a pruned unit, so the words name both.
        classes, pruned = len(self.excluded_classes), {k: v for k, v in self.units_pruned.items() if v}
        hidden = sum(pruned.values())
        lines.append(f"classes excluded: {classes}" + (f" ({', '.join(self.excluded_classes)})" if classes else ""))
        lines.append(f"hidden units pruned: {hidden}" + (f" ({', '.join(f'{k} {v}' for k, v in pruned.items())})"
                                                         if hidden else ""))
        of = f" of {self.total_units}" if self.total_units else ""
        lines.append(f"unit sparsity {self.unit_sparsity:.1%} ({classes + hidden}{of} units: {classes} classes, "
                     f"{hidden} hidden), weights removed {self.weights_removed:.1%}, "
                     f"MACs removed {self.macs_removed:.1%}")
        lines.append("normalization: " + (f"shifted toward the user's data, strength {self.normalization_strength:g}"
                                          if self.normalization_strength else "trained statistics"))
        lines.append(f"sparsity: {self.sparsity_search}")
        lines.extend(self.notes)
        return "\n".join(lines)


def personalize(personalizer, x, rule=None, batch_size=None, progress=None):
    """Reset, observe `x`, apply `rule` (an `AutoRule`) with the signatures the model has; a report."""
    rule = rule or AutoRule()
    meta = personalizer.metadata
    available = set(meta.signatures)
    if not isinstance(x, np.ndarray) and iter(x) is x:
        x = list(x)  # a one-shot iterator of batches: the steps below pass over the data again
    personalizer.reset()
    outputs, typicality = personalizer.observe_typicality(x, batch_size=batch_size, progress=progress)
    n = personalizer.samples
    notes, steps, excluded, strength = [], [], (), 0.0
    names = list(meta.labels) or [str(i) for i in range(meta.num_classes)]
    output = meta.output_group
    counts = _class_counts(personalizer, names)
    if n < rule.min_samples:
        notes.append(f"too little data: {n} samples < {rule.min_samples}; the model stays dense")
        return _report(personalizer, "dense (too little data)", n, counts, (), "not run", 0.0, notes)
    predicted = np.argmax(np.reshape(outputs, (len(outputs), -1)), axis=-1)
    guard, in_domain, typical = open_set.check(predicted, names, rule.min_samples, rule.min_in_domain_share,
                                               typicality)
    if not guard.enough:
        notes.append(f"too little in-domain data: {guard.in_domain} of {n} samples look like the model's classes "
                     f"(< {rule.min_samples} or < {rule.min_in_domain_share:.0%}); the model stays dense")
        return _report(personalizer, "dense (too little in-domain data)", n, counts, (), "not run", 0.0, notes,
                       guard=guard)
    words = open_set.in_domain_samples(x, in_domain) if guard.filtered else x  # what the class test, step 5 see
    if not typical.all():  # atypical samples leave every step: counts, activity and BN moments without them
        x = open_set.in_domain_samples(x, typical)
        personalizer.reset()
        personalizer.observe(x, batch_size=batch_size, progress=progress)
        counts = _class_counts(personalizer, names)
    observed = int(typical.sum())
    vocabulary = [i for i in range(len(counts)) if names[i] not in guard.catch_all]
    outcome = (class_test([list(counts.values())[i] for i in vocabulary], guard.in_domain, rule.class_share,
                          rule.class_alpha) if counts else None)
    k = outcome.max_count if outcome else -1
    test = f"{outcome} (α = {rule.class_alpha:g})" if outcome else ""
    if output is None:
        test = "not available (model exported without prune_outputs)"
    elif k >= 0 and sig.PRUNE_OUTPUTS in available:
        personalizer.prune_outputs((k + 0.5) / observed)  # the vocabulary's counts ≤ k, of the samples observed
        state = personalizer.get_state()
        masks = state.masks[output.offset:output.offset + output.units]
        kept = [output.offset + names.index(c) for c in guard.catch_all if masks[names.index(c)] < 0.5]
        if kept:  # the catch-all classes are no class a user "never says": they stay
            restored = state.masks.copy()
            restored[kept] = 1.0
            personalizer.set_state(dataclasses.replace(state, masks=restored))
            masks = restored[output.offset:output.offset + output.units]
        excluded = tuple(names[i] for i in np.flatnonzero(masks < 0.5))
        if excluded:
            steps.append(f"exclude {len(excluded)} classes")
    if sig.PRUNE_DORMANT in available:
        personalizer.prune_dormant(rule.dormant_threshold)
        if any(_hidden_pruned(personalizer).values()):  # excluded classes are pruned units too: not counted here
            steps.append(f"prune units active < {rule.dormant_threshold:g}")
    else:
        notes.append("this model file has no prune_dormant signature (exported by an older version)")
    if sig.ADAPT_NORMALIZATION in available and rule.normalization_strength > 0:
        coverage = class_coverage(list(counts.values())) if counts else 1.0
        if excluded:
            notes.append("normalization kept: classes were excluded, so the data's shift is one of classes")
        elif coverage < rule.normalization_min_coverage:
            notes.append(f"normalization kept: the predictions cover {coverage:.0%} of the classes a user of every "
                         f"class would show (< {rule.normalization_min_coverage:.0%}), so the data's shift may be "
                         "one of classes")
        else:
            personalizer.adapt_normalization(rule.normalization_strength)
            for _ in range(rule.normalization_passes - 1):
                personalizer.reset(counts=True, masks=False)  # clears the moments, keeps the statistics in use
                personalizer.observe(x, batch_size=batch_size, progress=progress)
                personalizer.adapt_normalization(rule.normalization_strength)
            strength = rule.normalization_strength
            steps.append(f"relative BN shift {strength:g}")
    elif meta.normalization_layers == () and sig.ADAPT_NORMALIZATION not in available:
        notes.append("no normalization statistics in this model file")
    search = "not available (model exported without magnitude pruning)"
    if sig.PRUNE_MAGNITUDE in available and rule.magnitude_agreement <= 1:
        rate, search = search_sparsity(personalizer, words, rule.stopping_rule(), batch_size)  # in-domain only
        if rate:
            steps.append(f"prune {rate:.0%} of units by magnitude")
    return _report(personalizer, " + ".join(steps) or "dense (nothing to change)", n, counts, excluded, test,
                   strength, notes, search, guard)


def _class_counts(personalizer, names):
    """Class name → how many observed samples the model predicted as it ({} without an output group)."""
    output = personalizer.metadata.output_group
    if output is None:
        return {}
    raw = personalizer.get_state().counts[output.offset:output.offset + output.units]
    return {names[i]: int(round(c)) for i, c in enumerate(raw)}


def search_sparsity(personalizer, x, rule=None, batch_size=None):
    """Step 5: the largest rate of `SPARSITY_STEPS` the `StoppingRule` accepts on samples `x`; (rate, explanation).

    Each rate in turn is pruned and measured against the unpruned model on `x` (`stopping.measure`); the first
    rate `rule` does not accept ends the search. The model is left pruned at the rate kept (unchanged when 0).
    """
    rule = rule or StoppingRule()
    base = personalizer.get_state()
    kind = personalizer.metadata.output_kind
    reference = posteriors(personalizer.predict(x, batch_size=batch_size), kind)
    in_play = classes_in_play(personalizer.metadata, base.masks)
    if in_play < 2:
        return 0.0, (f"nothing pruned: {in_play} class in play, so every pruned model agrees with the unpruned "
                     "one and the samples say nothing about the loss")
    chosen, measured, stop = 0.0, [], ""
    for rate in SPARSITY_STEPS:
        personalizer.prune_magnitude(rate)
        evidence = measure(rate, reference, posteriors(personalizer.predict(x, batch_size=batch_size), kind))
        measured.append(rule.describe(evidence))
        personalizer.set_state(base)
        if not rule.accepts(evidence, in_play):
            stop = f"; {rate:.0%} broke a limit ({rule.limits()})"
            break
        chosen = rate
    else:
        stop = "; every rate kept within the limits"
    if chosen:
        personalizer.prune_magnitude(chosen)
    outcome = f"pruned {chosen:.0%} of each layer's units" if chosen else "nothing pruned"
    return chosen, (f"{outcome} (on the {len(reference)} samples, against the unpruned model: "
                    f"{'; '.join(measured)}{stop})")


def classes_in_play(metadata, masks):
    """How many classes the model can still predict: output units not excluded (all when none can be)."""
    output = metadata.output_group
    if output is None:
        return int(metadata.num_classes)
    return int(np.sum(masks[output.offset:output.offset + output.units] > 0.5))


def _report(personalizer, recipe, n, counts, excluded, test, strength, notes, search="not run", guard=None):
    s = personalizer.sparsity()
    pruned = _hidden_pruned(personalizer)
    share, said = (guard.share, str(guard)) if guard is not None else (1.0, "not measured (too little data)")
    return PersonalizationReport(recipe, n, counts, excluded, test, pruned, s.units, s.weights, s.macs, strength,
                                 tuple(notes), s.total_units, search, share, said)


def _hidden_pruned(personalizer):
    """Hidden group name → units pruned (one get_state call, as the Kotlin port makes)."""
    masks = personalizer.get_state().masks
    return {g.name: int(g.units - masks[g.offset:g.offset + g.units].sum())
            for g in personalizer.metadata.hidden_groups}
