package org.tflitefineprune.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Mono float samples in [-1, 1] and their rate, decoded from a PCM WAV file. */
class Audio(val samples: FloatArray, val sampleRate: Int)

/**
 * Reads the bundled PCM WAV clips the way the Python side does (8/16/32-bit PCM, channels averaged,
 * 16-bit values divided by 32768), and fits a clip to the model's input as `fit_audio` does.
 */
object WavReader {
    private const val PCM = 1
    private const val EXTENSIBLE = 0xFFFE

    fun read(bytes: ByteArray, source: String): Audio {
        val buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
        if (bytes.size < 12 || tag(bytes, 0) != "RIFF" || tag(bytes, 8) != "WAVE") {
            throw FinePruneException("$source is not a readable PCM WAV file (no RIFF/WAVE header)")
        }
        var position = 12
        var format = -1
        var channels = 0
        var rate = 0
        var bits = 0
        var data: ByteBuffer? = null
        while (position + 8 <= bytes.size) {
            val id = tag(bytes, position)
            val size = buf.getInt(position + 4).toLong() and 0xffffffffL
            val start = position + 8
            val length = minOf(size, (bytes.size - start).toLong()).toInt()
            when (id) {
                "fmt " -> {
                    if (length < 16) throw FinePruneException("$source has a truncated fmt chunk")
                    format = buf.getShort(start).toInt() and 0xffff
                    channels = buf.getShort(start + 2).toInt()
                    rate = buf.getInt(start + 4)
                    bits = buf.getShort(start + 14).toInt()
                }
                "data" -> data = ByteBuffer.wrap(bytes, start, length).slice().order(ByteOrder.LITTLE_ENDIAN)
            }
            position = start + length + (length and 1) // chunks are padded to even sizes
        }
        if (format != PCM && format != EXTENSIBLE) throw FinePruneException("$source is not PCM WAV (format tag $format)")
        if (channels < 1) throw FinePruneException("$source has $channels channels")
        if (bits !in intArrayOf(8, 16, 32)) throw FinePruneException("$source: $bits-bit WAV is not supported (8, 16 or 32-bit PCM)")
        val pcm = data ?: throw FinePruneException("$source has no data chunk")
        val width = bits / 8
        val frames = pcm.remaining() / (width * channels)
        if (frames == 0) throw FinePruneException("$source holds no audio samples")
        val samples = FloatArray(frames) { f ->
            var sum = 0f
            for (c in 0 until channels) {
                val at = (f * channels + c) * width
                sum += when (bits) {
                    8 -> ((pcm.get(at).toInt() and 0xff) - 128) / 128f
                    16 -> pcm.getShort(at) / 32768f
                    else -> (pcm.getInt(at) / 2147483648.0).toFloat()
                }
            }
            if (channels == 1) sum else sum / channels
        }
        return Audio(samples, rate)
    }

    /** Samples from 16-bit PCM (the microphone), scaled like a 16-bit WAV file. */
    fun fromPcm16(pcm: ShortArray, sampleRate: Int) = Audio(FloatArray(pcm.size) { pcm[it] / 32768f }, sampleRate)

    /** Pad with zeros at the end or cut to `length` samples; the rate must already be the model's (no resampling here). */
    fun fit(audio: Audio, length: Int, modelRate: Int, source: String): FloatArray {
        if (modelRate > 0 && audio.sampleRate != modelRate) {
            throw FinePruneException("$source is ${audio.sampleRate} Hz; the model takes $modelRate Hz")
        }
        if (audio.samples.any { !it.isFinite() }) throw FinePruneException("$source holds NaN or infinite samples")
        if (audio.samples.all { it == 0f }) throw FinePruneException("$source is silent (every sample is 0)")
        return FloatArray(length) { if (it < audio.samples.size) audio.samples[it] else 0f }
    }

    private fun tag(bytes: ByteArray, at: Int) = String(bytes, at, 4, Charsets.US_ASCII)
}
