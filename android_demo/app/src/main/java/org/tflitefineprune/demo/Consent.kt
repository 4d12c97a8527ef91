package org.tflitefineprune.demo

import org.tflitefineprune.core.AutoReport
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationResult

/**
 * What personalizing Me's samples found, shown before anything is switched on: how many samples the model
 * put in each class, the classes the profile would exclude, the recipe, and the share of samples the
 * recipe's open-set guard judged in-domain (null until the core's [AutoReport] reports one). Kept in app storage
 * while it waits ([ConsentStore]), so the question outlives the process.
 */
class Consent(
    val result: PersonalizationResult,
    /** Class name and how many of Me's samples the dense model predicted as it, most first; zeros left out. */
    val predicted: List<Pair<String, Int>>,
    val excluded: List<String>,
    val recipe: String,
    val notes: List<String>,
    val inDomainShare: Double?,
    /** False when the recipe changed nothing: there is nothing to switch on. */
    val changes: Boolean,
    /** How many of Me's samples it was computed on (Me may have more by the time the user answers). */
    val samples: Int,
) {
    companion object {
        fun of(spec: ModelSpec, result: PersonalizationResult, samples: Int): Consent {
            val report = result.auto
            val labels = spec.layout.labels
            val counts = report?.classCounts ?: IntArray(0)
            val predicted = counts.indices.filter { counts[it] > 0 }.sortedByDescending { counts[it] }
                .map { labels.getOrElse(it) { it.toString() } to counts[it] }
            return Consent(result, predicted, result.excludedClasses, report?.recipe ?: spec.recipe.name,
                report?.notes ?: emptyList(), report?.let { inDomainShare(it) }, report?.steps?.isNotEmpty() ?: true, samples)
        }

        /**
         * The open-set guard's in-domain share, read by name (`AutoReport.inDomainShare`, a Double in 0..1, or
         * null) so this app builds against a core with or without it; R8 keeps the getter (proguard-rules.pro).
         */
        fun inDomainShare(report: AutoReport): Double? = try {
            (report.javaClass.getMethod("getInDomainShare").invoke(report) as? Number)?.toDouble()?.takeIf { it in 0.0..1.0 }
        } catch (_: NoSuchMethodException) {
            null
        }
    }
}
