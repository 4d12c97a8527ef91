package org.tflitefineprune.core

import kotlin.math.exp
import kotlin.math.ln
import kotlin.math.ln1p

/** The parameters of the automatic recipe (tflite_fineprune/auto_recipe.py `AutoRule`), read from the manifest. */
class AutoRule(
    val minSamples: Int = 10,
    val classShare: Double = 0.5,
    val classAlpha: Double = 0.02,
    val dormantThreshold: Double = 0.01,
    val normalizationStrength: Double = 0.3,
    val normalizationPasses: Int = 3,
    val magnitudeAgreement: Double = 0.99,
    val stopConfidence: Double = 0.95,
    val stopMaxDisagreement: Double = 0.01,
    val stopMaxShift: Double = 0.03,
    /** The open-set guard (OpenSet): a smaller in-domain share leaves the model dense; < 0 turns the guard off. */
    val minInDomainShare: Double = 0.1,
    /** Step 4 shifts BN statistics only at this [AutoRecipe.classCoverage] or more; 0 turns the check off. */
    val normalizationMinCoverage: Double = 0.8,
) {
    /** Step 5's [StoppingRule] with these fields (auto_recipe.py `AutoRule.stopping_rule`). */
    fun stoppingRule(): StoppingRule = StoppingRule(magnitudeAgreement, stopConfidence, stopMaxDisagreement, stopMaxShift)

    companion object {
        /** Manifest keys, as the Python dataclass names them. */
        val KEYS = listOf("min_samples", "class_share", "class_alpha", "dormant_threshold", "normalization_strength", "normalization_passes", "magnitude_agreement",
            "stop_confidence", "stop_max_disagreement", "stop_max_shift", "min_in_domain_share",
            "normalization_min_coverage")

        fun of(values: Map<String, Double>): AutoRule {
            val unknown = values.keys - KEYS.toSet()
            if (unknown.isNotEmpty()) throw FinePruneException("automatic recipe has unknown parameters $unknown; expected $KEYS")
            val d = AutoRule()
            return AutoRule(
                values["min_samples"]?.toInt() ?: d.minSamples, values["class_share"] ?: d.classShare,
                values["class_alpha"] ?: d.classAlpha, values["dormant_threshold"] ?: d.dormantThreshold,
                values["normalization_strength"] ?: d.normalizationStrength, values["normalization_passes"]?.toInt() ?: d.normalizationPasses,
                values["magnitude_agreement"] ?: d.magnitudeAgreement, values["stop_confidence"] ?: d.stopConfidence,
                values["stop_max_disagreement"] ?: d.stopMaxDisagreement, values["stop_max_shift"] ?: d.stopMaxShift,
                values["min_in_domain_share"] ?: d.minInDomainShare, values["normalization_min_coverage"] ?: d.normalizationMinCoverage,
            )
        }
    }
}

/** The outcome of the iterated binomial class test: classes predicted ≤ [maxCount] times are excluded (-1: none). */
class ClassTest(val samples: Int, val classesInPlay: Int, val effectiveClasses: Double, val minPrior: Double, val maxCount: Int, val pValue: Double, val rounds: Int)

/** What the automatic recipe chose (the app shows [steps]). */
class AutoReport(val samples: Int, val classCounts: IntArray, val classTest: ClassTest?, val excluded: List<String>, val steps: List<String>, val notes: List<String>,
                 /** Step 5: the rate chosen (each layer's share of units) and what was measured at each rate tried. */
                 val sparsityRate: Double = 0.0, val evidence: List<Evidence> = emptyList(),
                 /** The open-set guard's measurement (null: too little data to run it). */
                 val openSet: OpenSet.Check? = null) {
    /** Step 5: (rate, agreement with the unpruned model on the samples) for each rate tried. */
    val agreements: List<Pair<Double, Double>> get() = evidence.map { it.rate to it.agreement }
    /** The share of the samples the guard counted as the model's world (null: not measured). */
    val inDomainShare: Double? get() = openSet?.share
    val recipe: String get() = steps.joinToString(" + ").ifEmpty {
        when {
            notes.any { it.startsWith("too little data") } -> "dense (too little data)"
            notes.any { it.startsWith("too little in-domain data") } -> "dense (too little in-domain data)"
            else -> "dense (nothing to change)"
        }
    }
}

/**
 * A port of `tflite_fineprune.auto_recipe.personalize`: the same thresholds, binomial tail, effective class
 * count and iteration, and the same signature calls in the same order with the same inputs (every
 * `get_state` of the Python function is one here too), so a replay of Python's recorded session matches
 * byte for byte.
 */
object AutoRecipe {
    const val PRUNE_OUTPUTS = "prune_outputs"
    const val PRUNE_DORMANT = "prune_dormant"
    const val ADAPT_NORMALIZATION = "adapt_normalization"
    const val PRUNE_MAGNITUDE = "prune_magnitude"

    /** The rates step 5 tries, in order: tflite_fineprune/auto_recipe.py `SPARSITY_STEPS` (tests/test_auto.py compares). */
    val SPARSITY_STEPS = listOf(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)

    /** P(Binomial(n, p) ≤ k), summed in log space. ln C(n, i) is built up term by term (Java has no lgamma). */
    fun binomialCdf(k: Int, n: Int, p: Double): Double {
        if (k < 0) return 0.0
        if (k >= n) return 1.0
        val logP = ln(p)
        val logQ = ln1p(-p)
        val terms = DoubleArray(k + 1)
        var logChoose = 0.0
        for (i in 0..k) {
            if (i > 0) logChoose += ln((n - i + 1).toDouble()) - ln(i.toDouble())
            terms[i] = logChoose + i * logP + (n - i) * logQ
        }
        val top = terms.max()
        return minOf(1.0, exp(top) * terms.sumOf { exp(it - top) })
    }

    /** The largest prediction count k with P(Binomial(n, prior) ≤ k) < alpha, or -1 when none. */
    fun excludableCount(n: Int, prior: Double, alpha: Double): Int {
        var k = -1
        while (k + 1 < n && binomialCdf(k + 1, n, prior) < alpha) k += 1
        return k
    }

    /** auto_recipe.py `class_coverage`: the raw counts' inverse Simpson index over its value for n samples spread evenly. */
    fun classCoverage(counts: IntArray): Double {
        val n = counts.sumOf { it.toDouble() }
        val k = counts.size
        if (n <= 0 || k < 2) return 1.0
        return n * n / counts.sumOf { it.toDouble() * it } * (1.0 / k + (1.0 - 1.0 / k) / n)
    }

    /** 1 / Σ f², f = each class's share of the predictions plus one pseudo-count each. */
    fun effectiveClasses(counts: List<Int>): Double {
        val c = counts.map { it + 1.0 }
        val total = c.sum()
        return total * total / c.sumOf { it * it }
    }

    fun classTest(counts: IntArray, n: Int, share: Double, alpha: Double): ClassTest {
        var present = BooleanArray(counts.size) { true }
        var rounds = 0
        var pMin: Double
        var k: Int
        while (true) {
            rounds += 1
            pMin = minOf(0.999, share / effectiveClasses(counts.filterIndexed { i, _ -> present[i] }))
            k = excludableCount(n, pMin, alpha)
            val survivors = BooleanArray(counts.size) { present[it] && counts[it] > k }
            if (survivors.none { it } || survivors.count { it } == present.count { it }) break
            present = survivors
        }
        val inPlay = counts.filterIndexed { i, _ -> present[i] }
        return ClassTest(n, inPlay.size, effectiveClasses(inPlay), pMin, k, binomialCdf(maxOf(k, 0), n, pMin), rounds)
    }

    /** Reset, observe [samples], apply [rule] with the signatures the model has. */
    fun personalize(session: PersonalizationSession, allSamples: List<Tensor>, rule: AutoRule, progress: PersonalizationSession.Progress? = null): AutoReport {
        val layout = session.model.layout
        val available = layout.signatures.toSet()
        val notes = ArrayList<String>()
        val steps = ArrayList<String>()
        var excluded = emptyList<String>()
        var samples = allSamples
        session.reset()
        val observed = session.observe(samples, progress)
        val n = Math.rint(session.getState().samples).toInt() // Python's round(): half to even
        val output = layout.outputGroup
        val names = if (layout.labels.isNotEmpty()) layout.labels else (0 until layout.numClasses).map { it.toString() }
        var counts = classCounts(session)
        if (n < rule.minSamples) {
            notes.add("too little data: $n samples < ${rule.minSamples}; the model stays dense")
            return report(session, n, counts, null, emptyList(), steps, notes)
        }
        val guard = OpenSet.check(observed.predicted, names, rule.minSamples, rule.minInDomainShare, observed.typicality)
        if (!guard.enough) {
            notes.add("too little in-domain data: ${guard.inDomain} of $n samples look like the model's classes; the model stays dense")
            return report(session, n, counts, null, emptyList(), steps, notes, openSet = guard)
        }
        // What the class test and step 5 see: the in-domain samples.
        val words = if (guard.filtered) samples.filterIndexed { i, _ -> guard.mask[i] } else samples
        if (!guard.typical.all { it }) { // atypical samples leave every step: counts, activity and BN moments without them
            samples = samples.filterIndexed { i, _ -> guard.typical[i] }
            session.reset()
            session.observe(samples, progress)
            counts = classCounts(session)
        }
        val observedCount = guard.typical.count { it }
        val vocabulary = counts.indices.filter { names[it] !in guard.catchAll }
        val test = if (counts.isNotEmpty()) classTest(IntArray(vocabulary.size) { counts[vocabulary[it]] }, guard.inDomain, rule.classShare, rule.classAlpha) else null
        val k = test?.maxCount ?: -1
        if (output != null && k >= 0 && PRUNE_OUTPUTS in available) {
            session.callScalars(PRUNE_OUTPUTS, mapOf("min_fraction" to (k + 0.5) / observedCount))
            val state = session.getState()
            var masks = state.masks
            val kept = guard.catchAll.map { output.offset + names.indexOf(it) }.filter { masks[it] < 0.5f }
            if (kept.isNotEmpty()) { // the catch-all classes are no class a user "never says": they stay
                masks = masks.copyOf()
                for (i in kept) masks[i] = 1f
                session.setState(PersonalizationState(masks, state.counts, state.samples, state.optional))
            }
            excluded = (0 until output.units).filter { masks[output.offset + it] < 0.5f }.map { names[it] }
            if (excluded.isNotEmpty()) steps.add("exclude ${excluded.size} classes")
        }
        if (PRUNE_DORMANT in available) {
            session.callScalars(PRUNE_DORMANT, mapOf("threshold" to rule.dormantThreshold))
            // Hidden units only: excluded classes are pruned (output) units too, and have their own step.
            val masks = session.getState().masks
            val hiddenPruned = layout.groups.filter { it.role != ModelLayout.ROLE_OUTPUT }
                .sumOf { g -> (0 until g.units).count { masks[g.offset + it] < 0.5f } }
            if (hiddenPruned > 0) steps.add("prune units active < ${rule.dormantThreshold}")
        } else {
            notes.add("this model file has no prune_dormant signature (exported by an older version)")
        }
        if (ADAPT_NORMALIZATION in available && rule.normalizationStrength > 0) {
            val coverage = if (counts.isNotEmpty()) classCoverage(counts) else 1.0
            if (excluded.isNotEmpty()) {
                notes.add("normalization kept: classes were excluded, so the data's shift is one of classes")
            } else if (coverage < rule.normalizationMinCoverage) {
                notes.add("normalization kept: the predictions cover ${Math.round(coverage * 100)}% of the classes a user of every class would show, so the data's shift may be one of classes")
            } else {
                session.callScalars(ADAPT_NORMALIZATION, mapOf("strength" to rule.normalizationStrength))
                repeat(rule.normalizationPasses - 1) {
                    session.reset(counts = true, masks = false) // clears the moments, keeps the statistics in use
                    session.observe(samples, progress)
                    session.callScalars(ADAPT_NORMALIZATION, mapOf("strength" to rule.normalizationStrength))
                }
                steps.add("relative BN shift ${rule.normalizationStrength}")
            }
        }
        var rate = 0.0
        var evidence = emptyList<Evidence>()
        if (PRUNE_MAGNITUDE in available && rule.magnitudeAgreement <= 1) {
            val search = searchSparsity(session, words, rule.stoppingRule())
            rate = search.first
            evidence = search.second
            if (rate > 0) steps.add("prune ${Math.round(rate * 100)}% of units by magnitude")
        }
        return report(session, n, counts, test, excluded, steps, notes, rate, evidence, guard)
    }

    /** Per class, how many observed samples the model predicted as it (empty without an output group; one getState). */
    private fun classCounts(session: PersonalizationSession): IntArray {
        val output = session.model.layout.outputGroup ?: return IntArray(0)
        val raw = session.getState().counts
        return IntArray(output.units) { Math.rint(raw[output.offset + it].toDouble()).toInt() }
    }

    /**
     * Step 5 (auto_recipe.py `search_sparsity`): the largest rate of [SPARSITY_STEPS] that [rule] accepts on [samples],
     * each rate measured against the unpruned model ([Stopping.measure]); the first rate it does not accept ends
     * the search. With fewer than two classes in play nothing is tried. The model is left pruned at the rate kept.
     */
    fun searchSparsity(session: PersonalizationSession, samples: List<Tensor>, rule: StoppingRule): Pair<Double, List<Evidence>> {
        val base = session.getState()
        val kind = session.model.layout.outputKind
        val reference = samples.map { Stopping.posteriors(session.scores(it), kind) }
        val inPlay = classesInPlay(session.model.layout, base.masks)
        if (inPlay < 2) return 0.0 to emptyList()
        var chosen = 0.0
        val measured = ArrayList<Evidence>()
        for (rate in SPARSITY_STEPS) {
            session.callScalars(PRUNE_MAGNITUDE, mapOf("sparsity" to rate))
            val evidence = Stopping.measure(rate, reference, samples.map { Stopping.posteriors(session.scores(it), kind) })
            measured.add(evidence)
            session.setState(base)
            if (!rule.accepts(evidence, inPlay)) break
            chosen = rate
        }
        if (chosen > 0) session.callScalars(PRUNE_MAGNITUDE, mapOf("sparsity" to chosen))
        return chosen to measured
    }

    /** How many classes the model can still predict: output units not excluded (all when none can be). */
    fun classesInPlay(layout: ModelLayout, masks: FloatArray): Int {
        val output = layout.outputGroup ?: return layout.numClasses
        return (0 until output.units).count { masks[output.offset + it] > 0.5f }
    }

    // Python's _report reads the state twice (sparsity(), then the masks): the same calls here.
    private fun report(session: PersonalizationSession, n: Int, counts: IntArray, test: ClassTest?, excluded: List<String>, steps: List<String>, notes: List<String>,
                       rate: Double = 0.0, evidence: List<Evidence> = emptyList(), openSet: OpenSet.Check? = null): AutoReport {
        session.getState()
        session.getState()
        return AutoReport(n, counts, test, excluded, steps, notes, rate, evidence, openSet)
    }
}
