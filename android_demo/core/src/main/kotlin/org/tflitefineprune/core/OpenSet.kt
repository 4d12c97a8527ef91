package org.tflitefineprune.core

/**
 * The open-set guard of the automatic recipe (tflite_fineprune/open_set.py, ported exactly): a sample is
 * *typical* when its typicality (collect's output, where the model has it) is ≤ 1, and *in-domain* when typical
 * and not filed in a catch-all class (`_unknown_`, `_silence_`). Atypical samples leave every step, the rest of
 * the out-of-domain ones the class test and step 5; too few in-domain samples leave the model dense.
 */
object OpenSet {
    /** Classes that hold "none of the model's words" (open_set.py `OUT_OF_VOCABULARY_LABELS`). */
    val OUT_OF_VOCABULARY_LABELS = listOf("_unknown_", "_silence_")

    /** Indices of the catch-all classes among [labels], in label order. */
    fun outOfVocabularyClasses(labels: List<String>): List<Int> = labels.indices.filter { labels[it] in OUT_OF_VOCABULARY_LABELS }

    /** What the guard measured ([inDomain] of [samples]) and decided ([enough]: false leaves the model dense). */
    class Check(val samples: Int, val inDomain: Int, val catchAll: List<String>, val enough: Boolean, val enabled: Boolean,
                /** Samples whose typicality is > 1 (-1: no typicality output); samples predicted in a catch-all class. */
                val atypical: Int, val catchAllPredicted: Int, val mask: BooleanArray, val typical: BooleanArray) {
        val share: Double get() = if (samples > 0) inDomain.toDouble() / samples else 0.0
        val filtered: Boolean get() = inDomain < samples
    }

    /** The guard's verdict from per-sample predicted classes; [minShare] < 0 turns it off (every sample counts). */
    fun check(predicted: IntArray, labels: List<String>, minSamples: Int, minShare: Double, typicality: FloatArray? = null): Check {
        val enabled = minShare >= 0
        val catchAll = if (enabled) outOfVocabularyClasses(labels) else emptyList()
        val words = BooleanArray(predicted.size) { predicted[it] !in catchAll }
        // float64 as numpy compares (the float32 output widened exactly)
        val typical = BooleanArray(predicted.size) { typicality == null || !enabled || typicality[it].toDouble() <= 1.0 }
        val mask = BooleanArray(predicted.size) { words[it] && typical[it] }
        val inDomain = mask.count { it }
        val enough = inDomain >= minSamples && inDomain >= minShare * predicted.size
        val atypical = if (typicality != null && enabled) typical.count { !it } else -1
        return Check(predicted.size, inDomain, catchAll.map { labels[it] }, enough, enabled, atypical, words.count { !it }, mask, typical)
    }
}
