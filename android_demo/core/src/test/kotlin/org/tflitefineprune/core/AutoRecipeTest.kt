package org.tflitefineprune.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** The automatic recipe's arithmetic (the replay test checks its calls against Python's on real models). */
class AutoRecipeTest {
    private fun directCdf(k: Int, n: Int, p: Double): Double {
        var total = 0.0
        var choose = 1.0
        for (i in 0..k) {
            if (i > 0) choose = choose * (n - i + 1) / i
            total += choose * Math.pow(p, i.toDouble()) * Math.pow(1 - p, (n - i).toDouble())
        }
        return total
    }

    @Test
    fun binomialTailMatchesTheDirectSum() {
        for ((k, n, p) in listOf(Triple(0, 17, 0.05), Triple(3, 40, 0.1), Triple(10, 30, 0.5), Triple(2, 100, 0.02))) {
            assertEquals("P(B($n, $p) ≤ $k)", directCdf(k, n, p), AutoRecipe.binomialCdf(k, n, p), 1e-12)
        }
        assertEquals(0.0, AutoRecipe.binomialCdf(-1, 10, 0.3), 0.0)
        assertEquals(1.0, AutoRecipe.binomialCdf(10, 10, 0.3), 0.0)
    }

    @Test
    fun effectiveClassesIsTheInverseSimpsonIndexWithPseudoCounts() {
        assertEquals(10.0, AutoRecipe.effectiveClasses(List(10) { 5 }), 1e-12)
        assertTrue(AutoRecipe.effectiveClasses(listOf(50, 50, 0, 0, 0, 0, 0, 0, 0, 0)) < 2.5)
    }

    @Test
    fun classTestExcludesOnlyWhatASmallSampleCannotExplain() {
        // The recipe's own example: 17 samples over 10 classes exclude nothing (P ≈ 0.42 for a missing class).
        val spread = AutoRecipe.classTest(intArrayOf(2, 2, 2, 2, 2, 2, 2, 2, 1, 0), 17, 0.5, 0.01)
        assertEquals(-1, spread.maxCount)
        assertTrue(spread.pValue > 0.3)
        // Three classes meet 60 samples: the seven never predicted are excluded, the three kept, in a second round.
        val subset = AutoRecipe.classTest(intArrayOf(20, 0, 19, 0, 0, 21, 0, 0, 0, 0), 60, 0.5, 0.01)
        assertTrue(subset.maxCount >= 0 && subset.maxCount < 19)
        assertEquals(3, subset.classesInPlay)
        assertEquals(2, subset.rounds)
        assertTrue(subset.pValue < 0.01)
        // With half the samples the pseudo-counts keep every class (p ≈ 0.02 ≥ α for a missing one).
        assertEquals(-1, AutoRecipe.classTest(intArrayOf(10, 0, 9, 0, 0, 11, 0, 0, 0, 0), 30, 0.5, 0.01).maxCount)
    }

    @Test
    fun ruleComesFromTheManifestKeys() {
        val rule = AutoRule.of(mapOf("min_samples" to 5.0, "normalization_passes" to 1.0))
        assertEquals(5, rule.minSamples)
        assertEquals(1, rule.normalizationPasses)
        assertEquals(0.02, rule.classAlpha, 0.0)
        try {
            AutoRule.of(mapOf("alpha" to 0.1))
            throw AssertionError("an unknown parameter was accepted")
        } catch (e: FinePruneException) {
            assertTrue(e.message!!.contains("unknown parameters"))
        }
    }

    @Test
    fun stoppingRuleKeysComeFromTheManifest() {
        val rule = AutoRule.of(mapOf("stop_max_disagreement" to 0.05, "stop_max_shift" to 0.02, "stop_confidence" to 0.9))
        val stopping = rule.stoppingRule()
        assertEquals(0.05, stopping.maxDisagreement, 0.0)
        assertEquals(0.02, stopping.maxShift, 0.0)
        assertEquals(0.9, stopping.confidence, 0.0)
        assertEquals(0.99, stopping.agreement, 0.0)
    }

    @Test
    fun disagreementBoundIsTheClopperPearsonUpperBound() {
        // scipy.stats.beta.ppf(0.95, k + 1, n - k): the one-sided 95 % Clopper–Pearson upper bound.
        val expected = mapOf(Pair(0, 15) to 0.18103627252208462, Pair(0, 200) to 0.014867039231272054, Pair(1, 200) to 0.023498470434950704,
                             Pair(3, 500) to 0.015433734876752685, Pair(5, 20) to 0.4555824040017489)
        for ((kn, bound) in expected) {
            assertEquals("$kn", bound, Stopping.disagreementUpperBound(kn.first, kn.second, 0.95), 1e-12)
        }
        assertEquals(1.0, Stopping.disagreementUpperBound(20, 20, 0.95), 0.0)
        assertEquals(1.0, Stopping.disagreementUpperBound(0, 0, 0.95), 0.0)
    }

    @Test
    fun evidenceIsDisagreementsAndTheMeanTotalVariation() {
        val reference = listOf(doubleArrayOf(0.7, 0.2, 0.1), doubleArrayOf(0.4, 0.35, 0.25), doubleArrayOf(0.1, 0.1, 0.8))
        val pruned = listOf(doubleArrayOf(0.6, 0.3, 0.1), doubleArrayOf(0.3, 0.45, 0.25), doubleArrayOf(0.1, 0.1, 0.8))
        val evidence = Stopping.measure(0.5, reference, pruned)
        assertEquals(1, evidence.disagreements)
        assertEquals(3, evidence.samples)
        assertEquals(0.1 / 1.5, evidence.shiftMean, 1e-15) // shifts 0.1, 0.1, 0
        assertEquals(0.1 / 3.0, evidence.shiftError, 1e-15) // standard deviation 0.0577 over √3
        val soft = Stopping.posteriors(floatArrayOf(1f, 2f, -1f), "logits")
        assertEquals(0.25949646034241913, soft[0], 1e-15)
        assertEquals(0.7053845126982412, soft[1], 1e-15)
        assertEquals(0.3, Stopping.posteriors(floatArrayOf(0.3f, 0.7f), "probabilities")[0], 1e-7)
    }

    @Test
    fun fewSamplesOrOneClassInPlayAreNoEvidence() {
        val rule = StoppingRule()
        val none = { n: Int -> Evidence(0.5, n, 0, 0.0, 0.0) }
        assertTrue("0 of 15: the bound is 18 %", !rule.accepts(none(15), 10))
        assertTrue("0 of 298: 1.0002 %, above the 1 % bound", !rule.accepts(none(298), 10))
        assertTrue("0 of 299: 0.997 %", rule.accepts(none(299), 10))
        assertTrue("1 of 500: 0.95 %", rule.accepts(Evidence(0.5, 500, 1, 0.0, 0.0), 10))
        assertTrue("2 of 500: 1.25 %", !rule.accepts(Evidence(0.5, 500, 2, 0.0, 0.0), 10))
        assertTrue("one class in play agrees with anything", !rule.accepts(none(500), 1))
        assertTrue("a shift of 0.05 on average", !rule.accepts(Evidence(0.5, 500, 0, 0.05, 0.001), 10))
        assertTrue("3 of 100 disagree: below 99 %", !rule.accepts(Evidence(0.5, 100, 3, 0.0, 0.0), 10))
    }

    @Test
    fun openSetGuardCountsTheSamplesOutsideTheCatchAllClasses() {
        val labels = listOf("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
        assertEquals(listOf(10, 11), OpenSet.outOfVocabularyClasses(labels))
        val guard = OpenSet.check(intArrayOf(0, 11, 11, 3, 10, 9, 11), labels, 3, 0.1)
        assertEquals(listOf(true, false, false, true, false, true, false), guard.mask.toList())
        assertEquals(3, guard.inDomain)
        assertTrue(guard.enough && guard.filtered)
        // Too few in-domain samples, or too small a share of them (12 of 212 < 10 %), leave the model dense.
        assertTrue(!OpenSet.check(IntArray(49) { if (it < 40) 11 else 0 }, labels, 10, 0.1).enough)
        assertTrue(!OpenSet.check(IntArray(212) { if (it < 200) 11 else 0 }, labels, 10, 0.1).enough)
        assertTrue(OpenSet.check(IntArray(102) { if (it < 90) 11 else 0 }, labels, 10, 0.1).enough)
        // A negative share turns the guard off; a model without catch-all classes keeps every sample.
        assertTrue(OpenSet.check(IntArray(40) { 11 }, labels, 10, -1.0).let { it.enough && !it.filtered && !it.enabled })
        assertTrue(!OpenSet.check(intArrayOf(0, 1, 1), listOf("cat", "dog"), 1, 0.1).filtered)
        assertEquals(-1.0, AutoRule.of(mapOf("min_in_domain_share" to -1.0)).minInDomainShare, 0.0)
        // Atypical samples (typicality > 1) leave both masks; catch-all predictions only the in-domain one.
        val typed = OpenSet.check(intArrayOf(0, 11, 11, 3, 10, 9), labels, 1, 0.1, floatArrayOf(0.2f, 0.5f, 3f, 1.5f, 0.9f, 1f))
        assertEquals(listOf(true, true, false, false, true, true), typed.typical.toList())
        assertEquals(listOf(true, false, false, false, false, true), typed.mask.toList())
        assertEquals(2, typed.atypical)
        assertEquals(3, typed.catchAllPredicted)
    }

    @Test
    fun classCoverageIsTheInverseSimpsonIndexOverAnEvenSpread() {
        // auto_recipe.py class_coverage (tests/test_auto.py checks the same values)
        assertEquals(10 * (0.1 + 0.9 / 50), AutoRecipe.classCoverage(IntArray(10) { 5 }), 1e-12)
        assertEquals(2 * (0.1 + 0.9 / 20), AutoRecipe.classCoverage(intArrayOf(10, 10, 0, 0, 0, 0, 0, 0, 0, 0)), 1e-12)
        assertEquals(1.0, AutoRecipe.classCoverage(intArrayOf(7)), 0.0)
        assertEquals(1.0, AutoRecipe.classCoverage(intArrayOf(0, 0)), 0.0)
        assertEquals(0.0, AutoRule.of(mapOf("normalization_min_coverage" to 0.0)).normalizationMinCoverage, 0.0)
    }
}
