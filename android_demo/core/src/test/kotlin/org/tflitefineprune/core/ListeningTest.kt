package org.tflitefineprune.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files

class ListeningTest {
    @Test
    fun windowsOverlapByHopAndCarryTheStreamInOrder() {
        val stream = FloatArray(10) { it.toFloat() }
        val w = SlidingWindow(window = 4, hop = 2)
        // Fed in uneven chunks, as a microphone returns them.
        val windows = w.push(stream.copyOfRange(0, 3)) + w.push(stream.copyOfRange(3, 7)) + w.push(stream.copyOfRange(7, 10))
        assertEquals(4, windows.size)
        for ((i, got) in windows.withIndex()) assertArrayEquals(FloatArray(4) { (2 * i + it).toFloat() }, got, 0f)
    }

    @Test
    fun silenceIsGatedAndSpeechLevelsMeter() {
        val silence = FloatArray(16000)
        val tone = FloatArray(16000) { (0.5 * Math.sin(2 * Math.PI * 440 * it / 16000)).toFloat() }
        assertTrue(AudioLevel.dbfs(AudioLevel.rms(silence)) < AudioLevel.SILENCE_DBFS)
        assertEquals(-9.03, AudioLevel.dbfs(AudioLevel.rms(tone)), 0.01)
        assertEquals(0, AudioLevel.meter(AudioLevel.rms(silence)))
        assertEquals(84, AudioLevel.meter(AudioLevel.rms(tone)))
    }

    @Test
    fun probabilitiesOfLogProbabilitiesAreTheProbabilities() {
        val p = doubleArrayOf(0.7, 0.2, 0.1)
        val got = probabilities(FloatArray(3) { Math.log(p[it]).toFloat() })
        for (i in p.indices) assertEquals(p[i], got[i], 1e-6)
    }

    @Test
    fun atomicWriteReplacesAndLeavesNoTemporaryFile() {
        val dir = Files.createTempDirectory("atomic").toFile()
        val target = File(dir, "x.state")
        AtomicFiles.write(target, byteArrayOf(1, 2, 3))
        AtomicFiles.write(target, byteArrayOf(4))
        assertArrayEquals(byteArrayOf(4), target.readBytes())
        assertEquals(listOf("x.state"), dir.list()!!.toList())
        dir.deleteRecursively()
    }
}
