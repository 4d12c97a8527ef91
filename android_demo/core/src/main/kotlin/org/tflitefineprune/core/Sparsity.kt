package org.tflitefineprune.core

import kotlin.math.roundToLong

/** Fractions removed by the current masks (0 = dense model); a port of tflite_fineprune/sparsity.py. */
class Sparsity(
    val units: Double,
    val weights: Double,
    val macs: Double,
    val prunedUnits: Int,
    val totalUnits: Int,
    val remainingWeights: Long,
    val totalWeights: Long,
    val remainingMacs: Long,
    val totalMacs: Long,
) {
    companion object {
        /** Weights and MACs a layer still uses: a weight is removed when the unit it produces or reads is pruned. */
        private fun layerCost(layer: WeightLayer, alive: (Int?, Int) -> DoubleArray): Pair<Double, Double> {
            val aliveOut = alive(layer.outGroup, layer.outChannels)
            val aliveIn = ArrayList<Double>()
            val repeat = ArrayList<Double>()
            for (s in layer.inSegments) {
                alive(s.group, s.channels).forEach { aliveIn.add(it); repeat.add(s.repeat.toDouble()) }
            }
            val pairs = if (layer.kind == "depthwise") {
                (0 until layer.outChannels).sumOf { o -> aliveOut[o] * aliveIn[o / layer.depthMultiplier] }
            } else {
                aliveIn.indices.sumOf { aliveIn[it] * repeat[it] } * aliveOut.sum()
            }
            val weights = layer.kernelPositions * pairs + layer.paramsPerOutput * aliveOut.sum()
            val macs = layer.outputPositions.toDouble() * layer.kernelPositions * pairs
            return weights to macs
        }

        fun measure(layout: ModelLayout, masks: FloatArray): Sparsity {
            if (masks.size != layout.numUnits) throw FinePruneException("masks have ${masks.size} values; the model has ${layout.numUnits} units")
            fun slice(group: Int?, channels: Int, full: Boolean): DoubleArray {
                if (group == null || full) return DoubleArray(channels) { 1.0 }
                val g = layout.groups[group]
                return DoubleArray(g.units) { masks[g.offset + it].toDouble() }
            }
            var removedWeights = 0.0
            var removedMacs = 0.0
            for (layer in layout.weightLayers) {
                val (wFull, mFull) = layerCost(layer) { g, c -> slice(g, if (g == null) c else layout.groups[g].units, true) }
                val (wNow, mNow) = layerCost(layer) { g, c -> slice(g, c, false) }
                removedWeights += wFull - wNow
                removedMacs += mFull - mNow
            }
            val total = layout.numUnits
            val pruned = (total - masks.sumOf { it.toDouble() }).roundToLong().toInt()
            return Sparsity(
                units = if (total > 0) pruned.toDouble() / total else 0.0,
                weights = if (layout.totalWeights > 0) removedWeights / layout.totalWeights else 0.0,
                macs = if (layout.totalMacs > 0) removedMacs / layout.totalMacs else 0.0,
                prunedUnits = pruned,
                totalUnits = total,
                remainingWeights = (layout.totalWeights - removedWeights).roundToLong(),
                totalWeights = layout.totalWeights,
                remainingMacs = (layout.totalMacs - removedMacs).roundToLong(),
                totalMacs = layout.totalMacs,
            )
        }
    }
}
