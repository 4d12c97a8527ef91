package org.tflitefineprune.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.CRC32

/**
 * One user's personalization of one model: masks (0/1 per unit), activity counters, samples
 * observed, and the optional vectors of models exported with extra state (see [StateCodec.OPTIONAL]).
 */
class PersonalizationState(
    val masks: FloatArray,
    val counts: FloatArray,
    val samples: Double,
    val optional: Map<String, FloatArray> = emptyMap(),
) {
    /** The flag bits whose every vector (over all blocks of that bit) is present. */
    val flags: Int
        get() = StateCodec.OPTIONAL.groupBy { it.flag }.filter { (_, blocks) -> blocks.all { b -> b.names.all { it in optional } } }
            .keys.fold(0) { f, flag -> f or flag }
}

/** A decoded state file: its header fields and the state it holds. */
class StateFile(val formatVersion: Int, val fingerprintHex: String, val state: PersonalizationState)

/** What a state file must match: the model it is loaded into. */
class StateExpectation(
    val fingerprintHex: String,
    val numUnits: Int,
    val compensation: Boolean = false,
    val numClasses: Int = 0, // > 0 only for prior-corrected models
    val normChannels: Int = 0, // > 0 only for models with normalization statistics (metadata `normalization_layers`)
    val headClasses: Int = 0, // > 0 only for models with classifier prototypes: C (metadata `num_classes`)
    val headFeatures: Int = 0, // > 0 only for models with classifier prototypes: D (metadata `classifier_head[1]`)
    val magnitudes: Boolean = false, // models exported with magnitude pruning (the `prune_magnitude` signature)
) {
    val flags: Int get() = (if (compensation) StateCodec.FLAG_COMPENSATION else 0) or (if (numClasses > 0) StateCodec.FLAG_PRIORS else 0) or
        (if (normChannels > 0) StateCodec.FLAG_NORMALIZATION else 0) or (if (headClasses > 0) StateCodec.FLAG_PROTOTYPES else 0) or
        (if (magnitudes) StateCodec.FLAG_MAGNITUDES else 0)

    fun length(length: StateCodec.Length, units: Int) = when (length) {
        StateCodec.Length.UNITS -> units
        StateCodec.Length.CLASSES -> numClasses
        StateCodec.Length.CHANNELS -> normChannels
        StateCodec.Length.HEAD_CLASSES -> headClasses
        StateCodec.Length.HEAD_WEIGHTS -> headClasses * headFeatures
    }
}

/**
 * The binary state file format, versions 2 to 4, byte for byte as docs/state_format.md and
 * tflite_fineprune/state.py define it; a reader refuses every file the Python side refuses.
 * A file is written with the lowest version that can carry its blocks (at least 2): 3 with the
 * classifier-prototype vectors (flag bit 3), 4 with the activation magnitudes (flag bit 4).
 * Version-1 files (no normalization vectors) and version-2 files (no prototypes) are still read.
 */
object StateCodec {
    val MAGIC = "FPSTATE\u0000".toByteArray(Charsets.US_ASCII)
    const val VERSION = 2
    const val PROTOTYPES_VERSION = 3
    const val MAGNITUDES_VERSION = 4
    val READABLE_VERSIONS = listOf(1, 2, 3, 4)
    const val HEADER_BYTES = 56
    const val FLAG_COMPENSATION = 1
    const val FLAG_PRIORS = 2
    const val FLAG_NORMALIZATION = 4
    const val FLAG_PROTOTYPES = 8
    const val FLAG_MAGNITUDES = 16

    /** N units, C classes (prior-corrected models), B channels, C classes (prototype models), C × D head weights. */
    enum class Length { UNITS, CLASSES, CHANNELS, HEAD_CLASSES, HEAD_WEIGHTS }

    /** An optional block of vectors: present when its flag bit is set, each vector N units, C classes or B channels long. */
    class OptionalBlock(val flag: Int, val names: List<String>, val length: Length, val sinceVersion: Int = 1)

    /** In file order (docs/state_format.md, the optional-vector table). */
    val OPTIONAL = listOf(
        OptionalBlock(FLAG_COMPENSATION, listOf("sums", "fill"), Length.UNITS),
        OptionalBlock(FLAG_PRIORS, listOf("log_weights", "soft_counts"), Length.CLASSES),
        OptionalBlock(FLAG_NORMALIZATION, listOf("norm_sums", "norm_squares", "norm_count", "norm_mean", "norm_var"), Length.CHANNELS, sinceVersion = 2),
        // Classifier prototypes: counts N_c [C], sums S [C × D, class-major], the final Dense kernel in use [D × C].
        OptionalBlock(FLAG_PROTOTYPES, listOf("proto_counts"), Length.HEAD_CLASSES, sinceVersion = 3),
        OptionalBlock(FLAG_PROTOTYPES, listOf("proto_sums", "head_kernel"), Length.HEAD_WEIGHTS, sinceVersion = 3),
        // Magnitude pruning: per unit the summed per-sample mean |activation|.
        OptionalBlock(FLAG_MAGNITUDES, listOf("magnitudes"), Length.UNITS, sinceVersion = MAGNITUDES_VERSION),
    )

    private fun knownFlags(version: Int) = OPTIONAL.filter { it.sinceVersion <= version }.fold(0) { f, b -> f or b.flag }

    fun encode(fingerprintHex: String, state: PersonalizationState): ByteArray {
        val n = state.masks.size
        if (state.counts.size != n) throw FinePruneException("masks (${state.masks.size}) and counts (${state.counts.size}) must be equal-length vectors")
        val fingerprint = hexToBytes(fingerprintHex)
        val flags = state.flags
        val extra = OPTIONAL.filter { flags and it.flag != 0 }.flatMap { block -> block.names.map { state.optional.getValue(it) } }
        val size = HEADER_BYTES + 5 * n + extra.sumOf { 4 * it.size } + 4
        val buf = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN)
        val version = maxOf(VERSION, OPTIONAL.filter { flags and it.flag != 0 }.maxOfOrNull { it.sinceVersion } ?: VERSION)
        buf.put(MAGIC).putShort(version.toShort()).putShort(flags.toShort()).putInt(n).put(fingerprint).putDouble(state.samples)
        for (m in state.masks) buf.put(if (m > 0.5f) 1.toByte() else 0.toByte())
        for (c in state.counts) buf.putFloat(c)
        for (vector in extra) for (v in vector) buf.putFloat(v)
        val crc = CRC32().apply { update(buf.array(), 0, size - 4) }.value
        buf.putInt(crc.toInt())
        return buf.array()
    }

    /**
     * Parse and check a state file. With an [expectation] the file must belong to that model;
     * without one (a developer tool reading any file) the class count is taken from the file size.
     */
    fun decode(blob: ByteArray, expectation: StateExpectation?, source: String = "state"): StateFile {
        if (blob.size < HEADER_BYTES + 4) throw FinePruneException("$source is not a tflite-fineprune state file: only ${blob.size} bytes")
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        val magic = ByteArray(8).also { buf.get(it) }
        if (!magic.contentEquals(MAGIC)) throw FinePruneException("$source is not a tflite-fineprune state file (magic ${printable(magic)}, expected ${printable(MAGIC)})")
        val version = buf.short.toInt() and 0xffff
        if (version !in READABLE_VERSIONS) throw FinePruneException("$source has state format version $version; this app reads ${READABLE_VERSIONS.joinToString()}")
        val flags = buf.short.toInt() and 0xffff
        if (flags and knownFlags(version).inv() != 0) throw FinePruneException("$source has unknown flags 0x${Integer.toHexString(flags)}")
        val units = buf.int.toLong() and 0xffffffffL
        val fingerprint = ByteArray(32).also { buf.get(it) }
        val samples = buf.double
        val present = OPTIONAL.filter { flags and it.flag != 0 }
        val unitBytes = 5 * units + present.filter { it.length == Length.UNITS }.sumOf { 4L * units * it.names.size }
        val lengths = HashMap<Length, Long>()
        lengths[Length.UNITS] = units
        val sized = present.filter { it.length != Length.UNITS }
        if (expectation != null) {
            for (block in sized) lengths[block.length] = expectation.length(block.length, units.toInt()).toLong()
        } else if (sized.size == 1 && sized[0].flag != FLAG_PROTOTYPES) {
            // A tool reading any file: the one block whose length the units do not fix takes the rest of the file.
            lengths[sized[0].length] = maxOf(0L, (blob.size - HEADER_BYTES - 4 - unitBytes) / (4L * sized[0].names.size))
        } else if (sized.isNotEmpty()) {
            throw FinePruneException("$source holds ${sized.flatMap { it.names }.joinToString("/")} vectors; their lengths need the model " +
                "(C classes, B channels, D head features)")
        }
        val expectedSize = HEADER_BYTES + unitBytes + sized.sumOf { 4L * lengths.getValue(it.length) * it.names.size } + 4
        if (blob.size.toLong() != expectedSize) throw FinePruneException("$source is truncated or padded: ${blob.size} bytes, expected $expectedSize for $units units")
        val crc = CRC32().apply { update(blob, 0, blob.size - 4) }.value.toInt()
        if (ByteBuffer.wrap(blob, blob.size - 4, 4).order(ByteOrder.LITTLE_ENDIAN).int != crc) throw FinePruneException("$source is corrupted: checksum mismatch")
        val hex = bytesToHex(fingerprint)
        if (expectation != null) {
            if (hex != expectation.fingerprintHex || units != expectation.numUnits.toLong()) {
                throw FinePruneException("$source belongs to another model (fingerprint ${hex.take(12)}…, $units units; " +
                    "this model is ${expectation.fingerprintHex.take(12)}…, ${expectation.numUnits} units)")
            }
            for (block in OPTIONAL) {
                val has = flags and block.flag != 0
                val wanted = expectation.flags and block.flag != 0
                // Version-1 files predate normalization statistics: the model then keeps its trained ones.
                if (!has && version < block.sinceVersion) continue
                if (has != wanted) throw FinePruneException("$source ${if (has) "has" else "lacks"} ${block.names.joinToString("/")} values but the model " +
                    "${if (wanted) "uses" else "does not use"} them")
            }
        }
        val n = units.toInt()
        val rawMasks = ByteArray(n).also { buf.get(it) }
        val counts = FloatArray(n) { buf.float }
        val optional = LinkedHashMap<String, FloatArray>()
        for (block in present) {
            val length = lengths.getValue(block.length).toInt()
            for (name in block.names) optional[name] = FloatArray(length) { buf.float }
        }
        val badMask = rawMasks.any { it.toInt() and 0xff > 1 }
        val badValues = !samples.isFinite() || samples < 0 || counts.any { !it.isFinite() } || optional.values.any { v -> v.any { !it.isFinite() } } ||
            (optional["proto_counts"]?.any { it < 0 } ?: false)
        if (badMask || badValues) throw FinePruneException("$source holds invalid values (masks not 0/1, or non-finite counters)")
        return StateFile(version, hex, PersonalizationState(FloatArray(n) { rawMasks[it].toFloat() }, counts, samples, optional))
    }

    fun hexToBytes(hex: String): ByteArray {
        if (hex.length != 64 || hex.any { it !in "0123456789abcdef" }) throw FinePruneException("a model fingerprint is 64 lowercase hex digits, got '$hex'")
        return ByteArray(32) { hex.substring(2 * it, 2 * it + 2).toInt(16).toByte() }
    }

    fun bytesToHex(bytes: ByteArray) = bytes.joinToString("") { "%02x".format(it.toInt() and 0xff) }

    private fun printable(bytes: ByteArray) = bytes.joinToString("", "b'", "'") { b ->
        val c = b.toInt() and 0xff
        if (c in 32..126 && c != '\\'.code && c != '\''.code) c.toChar().toString() else "\\x%02x".format(c)
    }
}
