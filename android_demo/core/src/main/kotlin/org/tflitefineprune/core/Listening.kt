package org.tflitefineprune.core

import kotlin.math.exp
import kotlin.math.log10
import kotlin.math.sqrt

/**
 * Listen's audio path: one continuous microphone stream cut into model-sized windows that overlap
 * ([hop] samples apart), so a word spoken across a window edge is still seen whole by the next one.
 */
class SlidingWindow(val window: Int, val hop: Int) {
    init {
        if (window < 1 || hop < 1 || hop > window) throw FinePruneException("window $window and hop $hop: need 1 ≤ hop ≤ window")
    }

    private val ring = FloatArray(window)
    private var next = 0 // where the next sample goes; once full, also the oldest sample
    private var filled = 0
    private var sinceLast = 0

    /** Adds PCM samples (floats in [-1, 1]); returns every full window completed by them, oldest first. */
    fun push(samples: FloatArray): List<FloatArray> {
        val windows = ArrayList<FloatArray>()
        for (x in samples) {
            ring[next] = x
            next = (next + 1) % window
            if (filled < window) filled++
            sinceLast++
            if (filled == window && sinceLast >= hop) {
                val out = FloatArray(window)
                System.arraycopy(ring, next, out, 0, window - next)
                System.arraycopy(ring, 0, out, window - next, next)
                windows.add(out)
                sinceLast = 0
            }
        }
        return windows
    }
}

/** Loudness of PCM audio, for the recording level meter and Listen's silence gate. */
object AudioLevel {
    /** Root mean square of [samples] (floats in [-1, 1]); 0 for none. */
    fun rms(samples: FloatArray): Double {
        if (samples.isEmpty()) return 0.0
        var sum = 0.0
        for (x in samples) sum += x.toDouble() * x
        return sqrt(sum / samples.size)
    }

    /** Level in dB relative to full scale (a full-scale sine is about -3 dBFS); -120 for digital silence. */
    fun dbfs(rms: Double): Double = if (rms <= 1e-6) -120.0 else 20 * log10(rms)

    /** The meter's position, 0..100, over the range [-60, 0] dBFS. */
    fun meter(rms: Double): Int = ((dbfs(rms) + 60) / 60 * 100).toInt().coerceIn(0, 100)

    /** Windows quieter than this are not classified: Listen shows silence instead of a guess. */
    const val SILENCE_DBFS = -45.0
}

/** The model's output (logits or log-probabilities) as probabilities: a softmax, stable for large values. */
fun probabilities(output: FloatArray): DoubleArray {
    val top = output.maxOrNull()?.toDouble() ?: return DoubleArray(0)
    val e = DoubleArray(output.size) { exp(output[it] - top) }
    val total = e.sum()
    return DoubleArray(e.size) { e[it] / total }
}
