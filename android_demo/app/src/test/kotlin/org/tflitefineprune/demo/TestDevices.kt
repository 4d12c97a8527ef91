package org.tflitefineprune.demo

import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.SignatureRunner
import org.tflitefineprune.core.Tensor
import java.io.File
import java.io.FileInputStream
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit

/** Bundled files from a folder (what `tflite-fineprune android-assets -o FOLDER` wrote). */
class FolderAssets(private val folder: File) : AssetSource {
    override fun open(path: String) = FileInputStream(File(folder, path))
}

/**
 * A microphone that plays [pcm] (then silence, at the pace of a real one) to whoever opens it; [realTime]: the
 * PCM too arrives at a real microphone's pace.
 */
class PcmMicrophone(private val pcm: ShortArray, private val sampleRate: Int = 16000, private val realTime: Boolean = false) : Microphone {
    @Volatile var opens = 0
    @Volatile var closes = 0

    override fun open(sampleRate: Int): AudioInput {
        if (sampleRate != this.sampleRate) throw FinePruneException("test microphone plays ${this.sampleRate} Hz, asked for $sampleRate")
        opens++
        return object : AudioInput {
            var position = 0
            var closed = false

            override fun read(buffer: ShortArray, offset: Int, length: Int): Int {
                if (closed) throw FinePruneException("read after close")
                if (position >= pcm.size) {
                    Thread.sleep(1000L * length / sampleRate) // silence arrives in real time
                    buffer.fill(0, offset, offset + length)
                    return length
                }
                val n = minOf(length, pcm.size - position)
                if (realTime) Thread.sleep(1000L * n / sampleRate)
                System.arraycopy(pcm, position, buffer, offset, n)
                position += n
                return n
            }

            override fun close() {
                closed = true
                closes++
            }
        }
    }
}

/**
 * Holds every signature call of the models it wraps until [open]: a job caught in the middle. [failAfter] makes a
 * later call of one signature throw, as an interpreter that fails halfway through a job would.
 */
class Gate {
    private var latch = CountDownLatch(0)
    @Volatile var waiting = 0
    @Volatile private var failing: String? = null
    @Volatile private var callsBeforeFailure = 0

    /** The call of [signature] after the next [calls] ones throws (once). */
    fun failAfter(signature: String, calls: Int) {
        callsBeforeFailure = calls
        failing = signature
    }

    fun close() { latch = CountDownLatch(1) }

    fun open() = latch.countDown()

    fun pass() {
        waiting++
        if (!latch.await(120, TimeUnit.SECONDS)) throw AssertionError("gate never opened")
        waiting--
    }

    fun wrap(model: OpenedModel): OpenedModel = object : OpenedModel, SignatureRunner {
        override val signatureKeys get() = model.signatureKeys
        override fun run(signature: String, inputs: Map<String, Tensor>): Map<String, Tensor> {
            pass()
            if (signature == failing && callsBeforeFailure-- <= 0) {
                failing = null
                throw IllegalStateException("injected failure in '$signature'")
            }
            return model.run(signature, inputs)
        }
        override fun close() = model.close()
    }
}

/**
 * Real AudioRecords (on Robolectric's AudioRecord) for [AudioRecordMicrophone], each kept in [made]; the first
 * [refusals] do not start, as a microphone held by another app: `startRecording()` returns with the recorder still
 * stopped (what AudioRecord does when its native start fails), or, [throwing], throws as a recorder in a bad state does.
 */
class Recorders(private var refusals: Int, private val throwing: Boolean = false) {
    val made = ArrayList<AudioRecord>()

    fun make(sampleRate: Int, bufferBytes: Int): AudioRecord {
        val refuse = refusals-- > 0
        val record = object : AudioRecord(MediaRecorder.AudioSource.VOICE_RECOGNITION, sampleRate, AudioFormat.CHANNEL_IN_MONO,
            AudioFormat.ENCODING_PCM_16BIT, bufferBytes) {
            override fun startRecording() {
                if (!refuse) {
                    super.startRecording()
                } else if (throwing) {
                    throw IllegalStateException("startRecording() called on an uninitialized AudioRecord.")
                }
            }
        }
        synchronized(made) { made.add(record) }
        return record
    }
}
