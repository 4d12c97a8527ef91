package org.tflitefineprune.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files
import java.util.zip.CRC32

class StateCodecTest {
    private val fingerprint = "0123456789abcdef".repeat(4)
    private val plain = StateExpectation(fingerprint, 4)
    private val state = PersonalizationState(floatArrayOf(1f, 0f, 1f, 1f), floatArrayOf(3f, 0.5f, 0f, 7.25f), 8.0)

    private fun refused(blob: ByteArray, expectation: StateExpectation? = plain, expected: String) {
        try {
            StateCodec.decode(blob, expectation, "s.state")
            fail("a malformed state file was accepted; expected an error mentioning '$expected'")
        } catch (e: FinePruneException) {
            assertTrue("'${e.message}' should mention '$expected'", e.message!!.contains(expected))
        }
    }

    /** Rewrites bytes of a valid file and fixes the checksum, so only the intended field is wrong. */
    private fun patched(blob: ByteArray, edit: (ByteBuffer) -> Unit): ByteArray {
        val copy = blob.copyOf()
        edit(ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN))
        val crc = CRC32().apply { update(copy, 0, copy.size - 4) }.value.toInt()
        ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN).putInt(copy.size - 4, crc)
        return copy
    }

    @Test
    fun layoutIsTheDocumentedOne() {
        val blob = StateCodec.encode(fingerprint, state)
        assertEquals(60 + 5 * 4, blob.size)
        assertArrayEquals("FPSTATE\u0000".toByteArray(), blob.copyOfRange(0, 8))
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        assertEquals(2, buf.getShort(8).toInt())
        assertEquals(0, buf.getShort(10).toInt())
        assertEquals(4, buf.getInt(12))
        assertEquals(0x01.toByte(), blob[16])
        assertEquals(8.0, buf.getDouble(48), 0.0)
        assertArrayEquals(byteArrayOf(1, 0, 1, 1), blob.copyOfRange(56, 60))
        assertEquals(7.25f, buf.getFloat(60 + 12), 0f)
        assertEquals(CRC32().apply { update(blob, 0, blob.size - 4) }.value.toInt(), buf.getInt(blob.size - 4))
    }

    @Test
    fun roundTripsPlainAndOptionalVectors() {
        val decoded = StateCodec.decode(StateCodec.encode(fingerprint, state), plain).state
        assertArrayEquals(state.masks, decoded.masks, 0f)
        assertArrayEquals(state.counts, decoded.counts, 0f)
        assertEquals(8.0, decoded.samples, 0.0)

        val full = PersonalizationState(state.masks, state.counts, 8.0, linkedMapOf(
            "sums" to floatArrayOf(1f, 2f, 3f, 4f), "fill" to floatArrayOf(0f, 0.5f, 0f, 0f),
            "log_weights" to floatArrayOf(-1f, 0f, 1f), "soft_counts" to floatArrayOf(2f, 3f, 4f)))
        val blob = StateCodec.encode(fingerprint, full)
        assertEquals(60 + 5 * 4 + 8 * 4 + 8 * 3, blob.size)
        val expectation = StateExpectation(fingerprint, 4, compensation = true, numClasses = 3)
        val back = StateCodec.decode(blob, expectation).state
        assertEquals(3, back.flags)
        for ((name, values) in full.optional) assertArrayEquals(name, values, back.optional.getValue(name), 0f)
        // Without a model the class count comes from the file size.
        assertArrayEquals(full.optional["soft_counts"], StateCodec.decode(blob, null).state.optional["soft_counts"], 0f)
        refused(blob, plain, "truncated or padded")
        refused(StateCodec.encode(fingerprint, state), expectation, "lacks sums/fill")
    }

    private val normalization = linkedMapOf(
        "norm_sums" to floatArrayOf(0.5f, -1f, 2f), "norm_squares" to floatArrayOf(1f, 2f, 8f), "norm_count" to floatArrayOf(10f, 10f, 10f),
        "norm_mean" to floatArrayOf(0.1f, 0f, -0.2f), "norm_var" to floatArrayOf(1f, 0.5f, 2f))

    @Test
    fun version2CarriesTheNormalizationVectorsAfterTheOthers() {
        val normModel = StateExpectation(fingerprint, 4, numClasses = 0, normChannels = 3)
        val withNorm = PersonalizationState(state.masks, state.counts, 8.0, normalization)
        val blob = StateCodec.encode(fingerprint, withNorm)
        assertEquals(60 + 5 * 4 + 20 * 3, blob.size)
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        assertEquals(4, buf.getShort(10).toInt())
        // norm_sums right after the counters, norm_var last before the checksum.
        assertEquals(0.5f, buf.getFloat(56 + 5 * 4), 0f)
        assertEquals(2f, buf.getFloat(blob.size - 8), 0f)
        val back = StateCodec.decode(blob, normModel).state
        assertEquals(4, back.flags)
        for ((name, values) in normalization) assertArrayEquals(name, values, back.optional.getValue(name), 0f)
        assertArrayEquals(normalization["norm_var"], StateCodec.decode(blob, null).state.optional["norm_var"], 0f)
        // Every block at once, in the table's order.
        val everything = PersonalizationState(state.masks, state.counts, 8.0, linkedMapOf(
            "sums" to floatArrayOf(1f, 2f, 3f, 4f), "fill" to floatArrayOf(0f, 0.5f, 0f, 0f),
            "log_weights" to floatArrayOf(-1f, 0f), "soft_counts" to floatArrayOf(2f, 3f)) + normalization)
        val all = StateCodec.encode(fingerprint, everything)
        assertEquals(60 + 5 * 4 + 8 * 4 + 8 * 2 + 20 * 3, all.size)
        val allBack = StateCodec.decode(all, StateExpectation(fingerprint, 4, true, 2, 3)).state
        assertEquals(7, allBack.flags)
        for ((name, values) in everything.optional) assertArrayEquals(name, values, allBack.optional.getValue(name), 0f)
        refused(all, null, "need the model")
        // A model with normalization refuses a version-2 file without it, and the other way round.
        refused(StateCodec.encode(fingerprint, state), normModel, "lacks norm_sums")
        refused(blob, plain, "truncated or padded")
        refused(patched(blob) { it.putFloat(56 + 5 * 4, Float.POSITIVE_INFINITY) }, normModel, "non-finite")
    }

    // C = 2 classes, D = 3 head features.
    private val prototypes = linkedMapOf(
        "proto_counts" to floatArrayOf(4.5f, 0f),
        "proto_sums" to floatArrayOf(0.25f, 0.5f, 1f, 0f, 0f, 0f),
        "head_kernel" to floatArrayOf(1f, -1f, 0.5f, 2f, -0.75f, 3f))

    @Test
    fun version3CarriesThePrototypeVectorsLast() {
        val protoModel = StateExpectation(fingerprint, 4, headClasses = 2, headFeatures = 3)
        val withProto = PersonalizationState(state.masks, state.counts, 8.0, prototypes)
        val blob = StateCodec.encode(fingerprint, withProto)
        assertEquals(60 + 5 * 4 + 4 * 2 * (1 + 2 * 3), blob.size)
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        assertEquals(3, buf.getShort(8).toInt())
        assertEquals(8, buf.getShort(10).toInt())
        // proto_counts right after the counters, then proto_sums, head_kernel last before the checksum.
        assertEquals(4.5f, buf.getFloat(56 + 5 * 4), 0f)
        assertEquals(0.25f, buf.getFloat(56 + 5 * 4 + 4 * 2), 0f)
        assertEquals(3f, buf.getFloat(blob.size - 8), 0f)
        val file = StateCodec.decode(blob, protoModel)
        assertEquals(3, file.formatVersion)
        assertEquals(8, file.state.flags)
        for ((name, values) in prototypes) assertArrayEquals(name, values, file.state.optional.getValue(name), 0f)
        // With every other block too, in the table's order.
        val everything = PersonalizationState(state.masks, state.counts, 8.0, linkedMapOf(
            "sums" to floatArrayOf(1f, 2f, 3f, 4f), "fill" to floatArrayOf(0f, 0.5f, 0f, 0f),
            "log_weights" to floatArrayOf(-1f, 0f), "soft_counts" to floatArrayOf(2f, 3f)) + normalization + prototypes)
        val all = StateCodec.encode(fingerprint, everything)
        assertEquals(60 + 5 * 4 + 8 * 4 + 8 * 2 + 20 * 3 + 4 * 2 * 7, all.size)
        val allBack = StateCodec.decode(all, StateExpectation(fingerprint, 4, true, 2, 3, 2, 3)).state
        assertEquals(15, allBack.flags)
        for ((name, values) in everything.optional) assertArrayEquals(name, values, allBack.optional.getValue(name), 0f)
        // Without the model the lengths C and D are unknown.
        refused(blob, null, "need the model")
        // Models without prototypes refuse the file; a prototype model refuses a version-3 file without them.
        refused(blob, plain, "truncated or padded")
        refused(patched(StateCodec.encode(fingerprint, state)) { it.putShort(8, 3) }, protoModel, "lacks proto_counts")
        // Version-2 (and 1) files predate prototypes: they load into a prototype model (the app resets the kernel).
        assertEquals(2, StateCodec.decode(StateCodec.encode(fingerprint, state), protoModel).formatVersion)
        // Bit 3 exists only from version 3 on; counts are never negative.
        refused(patched(blob) { it.putShort(8, 2) }, protoModel, "unknown flags 0x8")
        refused(patched(blob) { it.putFloat(56 + 5 * 4, -1f) }, protoModel, "invalid values")
        // A state missing one of the prototype vectors does not set bit 3.
        assertEquals(0, PersonalizationState(state.masks, state.counts, 8.0, linkedMapOf("proto_counts" to floatArrayOf(1f, 2f))).flags)
    }

    @Test
    fun version4CarriesTheMagnitudesAfterEveryOtherBlock() {
        val magnitudeModel = StateExpectation(fingerprint, 4, headClasses = 2, headFeatures = 3, magnitudes = true)
        val magnitudes = floatArrayOf(0.5f, 0f, 7.25f, 1f)
        val withBoth = PersonalizationState(state.masks, state.counts, 8.0, prototypes + linkedMapOf("magnitudes" to magnitudes))
        val blob = StateCodec.encode(fingerprint, withBoth)
        assertEquals(60 + 5 * 4 + 4 * 2 * 7 + 4 * 4, blob.size)
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        assertEquals(4, buf.getShort(8).toInt())
        assertEquals(8 or 16, buf.getShort(10).toInt())
        assertEquals(1f, buf.getFloat(blob.size - 8), 0f) // the last magnitude, right before the checksum
        val file = StateCodec.decode(blob, magnitudeModel)
        assertEquals(4, file.formatVersion)
        assertArrayEquals(magnitudes, file.state.optional.getValue("magnitudes"), 0f)
        // A model without magnitude pruning refuses them, one with it refuses a version-4 file without them.
        refused(blob, StateExpectation(fingerprint, 4, headClasses = 2, headFeatures = 3), "has magnitudes values")
        refused(patched(StateCodec.encode(fingerprint, state)) { it.putShort(8, 4) }, StateExpectation(fingerprint, 4, magnitudes = true),
            "lacks magnitudes")
        // Bit 4 exists only from version 4 on.
        refused(patched(blob) { it.putShort(8, 3) }, magnitudeModel, "unknown flags 0x18")
    }

    @Test
    fun version1FilesStillLoadIntoModelsWithNormalization() {
        val v2 = StateCodec.encode(fingerprint, state)
        val v1 = patched(v2) { it.putShort(8, 1) }
        val file = StateCodec.decode(v1, StateExpectation(fingerprint, 4, normChannels = 3))
        assertEquals(1, file.formatVersion)
        assertEquals(0, file.state.flags)
        assertArrayEquals(state.counts, file.state.counts, 0f)
        assertEquals(1, StateCodec.decode(v1, plain).formatVersion)
    }

    @Test
    fun refusesEveryMalformedFileThePythonSideRefuses() {
        val blob = StateCodec.encode(fingerprint, state)
        refused(blob.copyOf(40), expected = "only 40 bytes")
        refused(patched(blob) { it.put(0, 'X'.code.toByte()) }, expected = "not a tflite-fineprune state file")
        refused(patched(blob) { it.putShort(8, 5) }, expected = "version 5")
        refused(patched(blob) { it.putShort(8, 0) }, expected = "version 0")
        refused(patched(blob) { it.putShort(10, 8) }, expected = "unknown flags 0x8")
        // Bit 2 (normalization) exists only from version 2 on.
        refused(patched(blob) { it.putShort(8, 1); it.putShort(10, 4) }, expected = "unknown flags 0x4")
        refused(patched(blob) { it.putShort(10, 1) }, expected = "truncated or padded")
        refused(blob.copyOf(blob.size + 4), expected = "truncated or padded")
        refused(blob.copyOf().also { it[57] = 1 }, expected = "checksum mismatch")
        refused(blob, StateExpectation("f".repeat(64), 4), "belongs to another model")
        refused(blob, StateExpectation(fingerprint, 5), "belongs to another model")
        refused(patched(blob) { it.put(57, 2) }, expected = "masks not 0/1")
        refused(patched(blob) { it.putFloat(60, Float.NaN) }, expected = "non-finite")
        refused(patched(blob) { it.putDouble(48, -1.0) }, expected = "non-finite")
        refused(patched(blob) { it.putDouble(48, Double.POSITIVE_INFINITY) }, expected = "non-finite")
    }

    @Test
    fun atomicWriteReplacesTheFileAndLeavesNoTemporaries() {
        val dir = Files.createTempDirectory("state").toFile()
        val target = File(dir, "user.state")
        AtomicFiles.write(target, byteArrayOf(1, 2, 3))
        AtomicFiles.write(target, StateCodec.encode(fingerprint, state))
        assertArrayEquals(state.counts, StateCodec.decode(target.readBytes(), plain).state.counts, 0f)
        assertEquals(listOf("user.state"), dir.list()!!.toList())
        try {
            AtomicFiles.write(File(File(dir, "missing"), "x.state"), byteArrayOf(1))
            fail("writing into a missing folder must fail")
        } catch (e: FinePruneException) {
            assertTrue(e.message!!.contains("cannot write"))
        }
        assertFalse(File(dir, "missing").exists())
    }

    @Test
    fun stateToolPrintsAndWritesTheSameJson() {
        val dir = Files.createTempDirectory("tool").toFile()
        val stateFile = File(dir, "a.state").also { it.writeBytes(StateCodec.encode(fingerprint, state)) }
        val json = StateTool.toJson(StateCodec.decode(stateFile.readBytes(), null))
        val jsonFile = File(dir, "a.json").also { it.writeText(json.toString()) }
        assertEquals(0, StateTool.run(arrayOf("encode-state", jsonFile.path, File(dir, "b.state").path)))
        assertArrayEquals(stateFile.readBytes(), File(dir, "b.state").readBytes())
        val err = java.io.ByteArrayOutputStream()
        assertEquals(2, StateTool.run(arrayOf("decode-state", File(dir, "none.state").path), java.io.PrintStream(err)))
        assertTrue(err.toString().contains("does not exist"))
    }
}
