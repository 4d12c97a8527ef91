package org.tflitefineprune.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class WavAndImageTest {
    private fun wav(samples: ShortArray, rate: Int = 16000, channels: Int = 1, extraChunk: Boolean = false): ByteArray {
        val extra = if (extraChunk) 8 + 3 + 1 else 0
        val data = samples.size * 2
        val buf = ByteBuffer.allocate(44 + extra + data).order(ByteOrder.LITTLE_ENDIAN)
        buf.put("RIFF".toByteArray()).putInt(36 + extra + data).put("WAVE".toByteArray())
        buf.put("fmt ".toByteArray()).putInt(16).putShort(1).putShort(channels.toShort()).putInt(rate)
            .putInt(rate * 2 * channels).putShort((2 * channels).toShort()).putShort(16)
        if (extraChunk) buf.put("LIST".toByteArray()).putInt(3).put(byteArrayOf(1, 2, 3, 0)) // odd size, padded
        buf.put("data".toByteArray()).putInt(data)
        for (s in samples) buf.putShort(s)
        return buf.array()
    }

    @Test
    fun readsPcm16LikeThePythonSide() {
        val audio = WavReader.read(wav(shortArrayOf(0, 16384, -32768, 32767), extraChunk = true), "a.wav")
        assertEquals(16000, audio.sampleRate)
        assertArrayEquals(floatArrayOf(0f, 0.5f, -1f, 32767 / 32768f), audio.samples, 0f)
        val stereo = WavReader.read(wav(shortArrayOf(16384, 0, 8192, 8192), channels = 2), "s.wav")
        assertArrayEquals(floatArrayOf(0.25f, 0.25f), stereo.samples, 0f)
    }

    @Test
    fun fitsPadsAndRefuses() {
        val audio = WavReader.read(wav(shortArrayOf(100, 200)), "a.wav")
        assertArrayEquals(floatArrayOf(100 / 32768f, 200 / 32768f, 0f, 0f), WavReader.fit(audio, 4, 16000, "a.wav"), 0f)
        for ((bytes, message) in listOf(
            "not a wav".toByteArray() to "RIFF/WAVE",
            wav(shortArrayOf(1), rate = 8000) to "8000 Hz",
            wav(shortArrayOf(0, 0)) to "silent",
            wav(ShortArray(0)) to "no audio samples",
        )) {
            try {
                WavReader.fit(WavReader.read(bytes, "x.wav"), 4, 16000, "x.wav")
                fail("expected an error mentioning '$message'")
            } catch (e: FinePruneException) {
                assertTrue("'${e.message}' should mention '$message'", e.message!!.contains(message))
            }
        }
    }

    @Test
    fun copiesSameSizePixelsExactlyAndAveragesLargerOnes() {
        val argb = intArrayOf(0xff102030.toInt(), 0xff405060.toInt())
        assertArrayEquals(byteArrayOf(0x10, 0x20, 0x30, 0x40, 0x50, 0x60), ImagePixels.toRgb(argb, 2, 1, 2, 1))
        // 4x2 → 1x1: the centered 2x2 crop (columns 1-2) averaged.
        val wide = intArrayOf(0xff000000.toInt(), 0xff0a0a0a.toInt(), 0xff141414.toInt(), 0xffffffff.toInt(),
            0xff000000.toInt(), 0xff0a0a0a.toInt(), 0xff141414.toInt(), 0xffffffff.toInt())
        assertArrayEquals(byteArrayOf(15, 15, 15), ImagePixels.toRgb(wide, 4, 2, 1, 1))
    }
}
