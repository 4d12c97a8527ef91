package org.tflitefineprune.demo

import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder
import org.tflitefineprune.core.FinePruneException
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

/** The phone's microphone: one AudioRecord for the whole recording, so consecutive reads leave no gaps. */
object AudioRecordMicrophone : Microphone {
    override fun open(sampleRate: Int): AudioInput {
        val minimum = AudioRecord.getMinBufferSize(sampleRate, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        if (minimum <= 0) throw FinePruneException("this phone cannot record $sampleRate Hz mono 16-bit audio")
        val recorder = try {
            AudioRecord(MediaRecorder.AudioSource.MIC, sampleRate, AudioFormat.CHANNEL_IN_MONO,
                AudioFormat.ENCODING_PCM_16BIT, maxOf(minimum, sampleRate)) // half a second of headroom
        } catch (e: SecurityException) {
            throw FinePruneException("the microphone permission is missing (${e.message})")
        }
        if (recorder.state != AudioRecord.STATE_INITIALIZED) {
            recorder.release()
            throw FinePruneException("the microphone could not be opened")
        }
        recorder.startRecording()
        return object : AudioInput {
            override fun read(buffer: ShortArray, offset: Int, length: Int): Int {
                val n = recorder.read(buffer, offset, length)
                if (n <= 0) throw FinePruneException("microphone read failed (error $n)")
                return n
            }

            override fun close() {
                recorder.stop()
                recorder.release()
            }
        }
    }
}

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
