package org.tflitefineprune.demo

import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder
import java.io.Closeable

/** A source of mono 16-bit PCM; the caller holds RECORD_AUDIO. */
fun interface Microphone {
    fun open(sampleRate: Int): AudioInput
}

/** One open recording: blocking reads of PCM samples until closed. */
interface AudioInput : Closeable {
    /** Reads up to [length] samples into [buffer] at [offset]; returns how many were read (> 0). */
    fun read(buffer: ShortArray, offset: Int, length: Int): Int
}

/**
 * The phone's microphone: one AudioRecord for the whole recording, so consecutive reads leave no gaps.
 * VOICE_RECOGNITION rather than MIC: no automatic gain or noise suppression, closer to the unprocessed
 * clips the speech model was trained on. [newRecorder] makes the AudioRecord (sample rate, buffer bytes): the
 * tests hand in one whose start fails, as a microphone held by another app does.
 */
class AudioRecordMicrophone(private val newRecorder: (Int, Int) -> AudioRecord = ::voiceRecognition) : Microphone {
    override fun open(sampleRate: Int): AudioInput {
        val minimum = AudioRecord.getMinBufferSize(sampleRate, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        if (minimum <= 0) throw UserFacingException(R.string.mic_unsupported, sampleRate)
        val recorder = try {
            newRecorder(sampleRate, maxOf(minimum, sampleRate)) // half a second of headroom
        } catch (e: SecurityException) {
            throw UserFacingException(R.string.mic_permission_missing, cause = e)
        }
        if (recorder.state != AudioRecord.STATE_INITIALIZED) {
            recorder.release()
            throw UserFacingException(R.string.mic_not_opened)
        }
        try {
            recorder.startRecording()
            if (recorder.recordingState != AudioRecord.RECORDSTATE_RECORDING) throw UserFacingException(R.string.mic_busy)
        } catch (e: Exception) {
            recorder.release() // a recorder that never started is not left holding the microphone
            throw e as? UserFacingException ?: UserFacingException(R.string.mic_not_started, e.message ?: e.javaClass.simpleName, cause = e)
        }
        return object : AudioInput {
            override fun read(buffer: ShortArray, offset: Int, length: Int): Int {
                val n = recorder.read(buffer, offset, length)
                if (n <= 0) throw UserFacingException(R.string.mic_read_failed, n)
                return n
            }

            override fun close() {
                try {
                    recorder.stop()
                } finally {
                    recorder.release() // also when stop() throws: the microphone is always given back
                }
            }
        }
    }
}

/** Mono 16-bit PCM from the VOICE_RECOGNITION source (the caller holds RECORD_AUDIO). */
fun voiceRecognition(sampleRate: Int, bufferBytes: Int) = AudioRecord(MediaRecorder.AudioSource.VOICE_RECOGNITION, sampleRate,
    AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT, bufferBytes)

/** Reads exactly [count] samples, in chunks of [chunk], reporting each chunk (for the level meter). */
fun AudioInput.readFully(count: Int, chunk: Int, onChunk: (ShortArray, Int, Int) -> Unit = { _, _, _ -> }): ShortArray {
    val clip = ShortArray(count)
    var read = 0
    while (read < count) {
        val n = read(clip, read, minOf(chunk, count - read))
        onChunk(clip, read, n)
        read += n
    }
    return clip
}

/** Reads and drops [count] samples: what the microphone buffered before the user was asked to speak. */
fun AudioInput.drain(count: Int, chunk: Int, onChunk: (ShortArray, Int, Int) -> Unit = { _, _, _ -> }) {
    val buffer = ShortArray(chunk)
    var left = count
    while (left > 0) {
        val n = read(buffer, 0, minOf(chunk, left))
        onChunk(buffer, 0, n)
        left -= n
    }
}

/** Where in a recording the word is. */
object SpeechWindow {
    /**
     * The [length] samples of [samples] with the most energy (the word, not the silence before or after it);
     * the whole of [samples] when it is no longer than [length].
     */
    fun centred(samples: FloatArray, length: Int): FloatArray {
        if (samples.size <= length) return samples
        var energy = 0.0
        for (i in 0 until length) energy += samples[i] * samples[i]
        var best = energy
        var start = 0
        for (i in length until samples.size) {
            energy += samples[i] * samples[i] - samples[i - length] * samples[i - length]
            if (energy > best + 1e-9) { best = energy; start = i - length + 1 }
        }
        return samples.copyOfRange(start, start + length)
    }
}
