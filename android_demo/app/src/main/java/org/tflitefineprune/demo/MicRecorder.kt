package org.tflitefineprune.demo

import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder
import org.tflitefineprune.core.FinePruneException

/** One-second, 16 kHz mono 16-bit clips from the microphone (the caller holds RECORD_AUDIO). */
class MicRecorder(private val sampleRate: Int = 16000, private val seconds: Double = 1.0) {
    @Throws(SecurityException::class)
    fun record(): ShortArray {
        val total = (sampleRate * seconds).toInt()
        val minimum = AudioRecord.getMinBufferSize(sampleRate, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        if (minimum <= 0) throw FinePruneException("this phone cannot record $sampleRate Hz mono 16-bit audio")
        val recorder = AudioRecord(MediaRecorder.AudioSource.MIC, sampleRate, AudioFormat.CHANNEL_IN_MONO,
            AudioFormat.ENCODING_PCM_16BIT, maxOf(minimum, total * 2))
        if (recorder.state != AudioRecord.STATE_INITIALIZED) {
            recorder.release()
            throw FinePruneException("the microphone could not be opened")
        }
        val clip = ShortArray(total)
        try {
            recorder.startRecording()
            var read = 0
            while (read < total) {
                val n = recorder.read(clip, read, total - read)
                if (n < 0) throw FinePruneException("microphone read failed (error $n)")
                read += n
            }
        } finally {
            recorder.stop()
            recorder.release()
        }
        return clip
    }
}
