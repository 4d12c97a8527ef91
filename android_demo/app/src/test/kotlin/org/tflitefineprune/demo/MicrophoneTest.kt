package org.tflitefineprune.demo

import android.media.AudioRecord
import android.media.MediaRecorder
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.annotation.Config
import org.robolectric.shadows.ShadowAudioRecord

/** The phone's AudioRecord microphone on Robolectric's AudioRecord: its source, its reads, its release. */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [34])
class MicrophoneTest {
    @After
    fun noSource() = ShadowAudioRecord.clearSource()

    @Test
    fun recordsFromTheVoiceRecognitionSourceAndReleasesTheRecorder() {
        val records = ArrayList<AudioRecord>()
        var next: Short = 0
        ShadowAudioRecord.setSourceProvider { record ->
            records.add(record)
            object : ShadowAudioRecord.AudioRecordSource {
                override fun readInShortArray(buffer: ShortArray, offset: Int, length: Int, blocking: Boolean): Int {
                    for (i in 0 until length) buffer[offset + i] = next++
                    return length
                }
            }
        }
        val input = AudioRecordMicrophone().open(16000)
        val clip = input.readFully(4000, 1600)
        assertArrayEquals(ShortArray(4000) { it.toShort() }, clip)
        input.drain(1600, 1600)
        assertEquals(4000 + 1600, next.toInt()) // the drained samples were read, not skipped
        val record = records.distinct().single() // one recorder for every read (Robolectric asks per read)
        // VOICE_RECOGNITION: no automatic gain or noise suppression, as the training clips had none.
        assertEquals(MediaRecorder.AudioSource.VOICE_RECOGNITION, record.audioSource)
        assertEquals(AudioRecord.RECORDSTATE_RECORDING, record.recordingState)
        input.close()
        assertEquals(AudioRecord.STATE_UNINITIALIZED, record.state) // released: the microphone is free for other apps
    }

    @Test
    fun aRecorderThatCannotStartIsReleasedAndTheNextOneRecords() {
        var next: Short = 0
        ShadowAudioRecord.setSourceProvider { _ -> object : ShadowAudioRecord.AudioRecordSource {
            override fun readInShortArray(buffer: ShortArray, offset: Int, length: Int, blocking: Boolean): Int {
                for (i in 0 until length) buffer[offset + i] = next++
                return length
            }
        } }
        val app = RuntimeEnvironment.getApplication()
        for (throwing in listOf(false, true)) {
            next = 0
            val recorders = Recorders(1, throwing)
            val microphone = AudioRecordMicrophone(recorders::make)
            val refused = assertThrows(UserFacingException::class.java) { microphone.open(16000) }
            assertEquals(if (throwing) "the microphone could not start: startRecording() called on an uninitialized AudioRecord."
                else "the microphone is in use by another app", refused.text(app))
            val first = recorders.made.single()
            assertEquals("released: the microphone is not held", AudioRecord.STATE_UNINITIALIZED, first.state)
            assertEquals(0, next.toInt()) // nothing was read from it
            // The next recording gets a recorder of its own, which starts and reads.
            val input = microphone.open(16000)
            val second = recorders.made[1]
            assertEquals(AudioRecord.RECORDSTATE_RECORDING, second.recordingState)
            assertArrayEquals(ShortArray(3200) { it.toShort() }, input.readFully(3200, 1600))
            input.close()
            assertEquals(AudioRecord.STATE_UNINITIALIZED, second.state)
            assertEquals(2, recorders.made.size)
        }
    }

    @Test
    fun theWordsWindowIsTheLoudestSecond() {
        val quiet = FloatArray(24000) { 0.001f * (it % 7 - 3) }
        for (i in 14000 until 18000) quiet[i] = if (i % 2 == 0) 0.5f else -0.5f // a burst 0.875 s to 1.125 s in
        val window = SpeechWindow.centred(quiet, 16000)
        assertEquals(16000, window.size)
        assertEquals(4000, window.count { it == 0.5f || it == -0.5f }) // the whole burst is inside
        assertArrayEquals(FloatArray(10) { 1f }, SpeechWindow.centred(FloatArray(10) { 1f }, 16000), 0f) // shorter: as it is
    }
}
