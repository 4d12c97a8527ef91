package org.tflitefineprune.core

import kotlin.math.abs
import kotlin.math.exp
import kotlin.math.sqrt

/** What one rate's pruned model did on the user's samples against the unpruned model (stopping.py `Evidence`). */
class Evidence(val rate: Double, val samples: Int, val disagreements: Int, val shiftMean: Double, val shiftError: Double) {
    val agreement: Double get() = if (samples > 0) 1.0 - disagreements.toDouble() / samples else 0.0
}

/**
 * Step 5's stopping rule, a port of `tflite_fineprune.stopping.StoppingRule`: a rate is kept when the agreement on
 * the samples is ≥ [agreement], the one-sided Clopper–Pearson upper bound on the disagreement rate is ≤
 * [maxDisagreement] and the mean distribution shift plus [shiftDeviations] standard errors is ≤ [maxShift], with
 * at least two classes in play.
 */
class StoppingRule(
    val agreement: Double = 0.99,
    val confidence: Double = 0.95,
    val maxDisagreement: Double = 0.01,
    val maxShift: Double = 0.03,
    val shiftDeviations: Double = 1.645,
) {
    /** (upper bound on the disagreement rate, upper bound on the mean distribution shift). */
    fun bounds(evidence: Evidence): Pair<Double, Double> =
        Stopping.disagreementUpperBound(evidence.disagreements, evidence.samples, confidence) to
            evidence.shiftMean + shiftDeviations * evidence.shiftError

    fun accepts(evidence: Evidence, classesInPlay: Int): Boolean {
        if (classesInPlay < 2 || evidence.samples < 1) return false
        val (disagreement, shift) = bounds(evidence)
        return evidence.agreement >= agreement && disagreement <= maxDisagreement && shift <= maxShift
    }
}

/** The arithmetic of tflite_fineprune/stopping.py, in the same order. */
object Stopping {
    /** Halvings of [k/n, 1] (stopping.py `BISECTION_STEPS`, tests/test_auto.py compares). */
    const val BISECTION_STEPS = 60

    /** One-sided Clopper–Pearson upper bound on a rate after [k] events in [n] trials: bisection on the binomial CDF. */
    fun disagreementUpperBound(k: Int, n: Int, confidence: Double): Double {
        if (n <= 0 || k >= n) return 1.0
        var low = k.toDouble() / n
        var high = 1.0
        for (step in 0 until BISECTION_STEPS) {
            val middle = 0.5 * (low + high)
            if (middle <= 0.0 || middle >= 1.0) break
            if (AutoRecipe.binomialCdf(k, n, middle) > 1.0 - confidence) low = middle else high = middle
        }
        return high
    }

    /** Class probabilities of one model output: softmax of logits ([outputKind] "logits"), probabilities as they are. */
    fun posteriors(outputs: FloatArray, outputKind: String): DoubleArray {
        val values = DoubleArray(outputs.size) { outputs[it].toDouble() }
        if (outputKind != "logits") return values
        var top = values[0]
        for (v in values) if (v > top) top = v
        val e = DoubleArray(values.size) { exp(values[it] - top) }
        var total = e[0]
        for (i in 1 until e.size) total += e[i]
        return DoubleArray(e.size) { e[it] / total }
    }

    /** The first index of the largest value (numpy's argmax). */
    fun argmax(values: DoubleArray): Int {
        var best = 0
        for (i in 1 until values.size) if (values[i] > values[best]) best = i
        return best
    }

    /** [Evidence] from the unpruned and pruned models' class probabilities on the same samples. */
    fun measure(rate: Double, reference: List<DoubleArray>, pruned: List<DoubleArray>): Evidence {
        val n = reference.size
        var disagreements = 0
        val shift = DoubleArray(n) { i ->
            if (argmax(pruned[i]) != argmax(reference[i])) disagreements += 1
            var total = abs(reference[i][0] - pruned[i][0])
            for (c in 1 until reference[i].size) total += abs(reference[i][c] - pruned[i][c])
            0.5 * total
        }
        var total = 0.0
        for (v in shift) total += v
        val mean = if (n > 0) total / n else 0.0
        if (n < 2) return Evidence(rate, n, disagreements, mean, 1.0)
        var squares = 0.0
        for (v in shift) squares += (v - mean) * (v - mean)
        return Evidence(rate, n, disagreements, mean, sqrt(squares / (n - 1)) / sqrt(n.toDouble()))
    }
}
