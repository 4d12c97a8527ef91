package org.tflitefineprune.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.CRC32

/**
 * One user's personalization of one model: masks (0/1 per unit), activity counters, samples
 * observed, and the vectors of the model's state blocks (named as [blocks] name them; by default
 * the built-in table [StateCodec.BUILT_IN], for a model the app's table knows).
 */
class PersonalizationState(
    val masks: FloatArray,
    val counts: FloatArray,
    val samples: Double,
    val optional: Map<String, FloatArray> = emptyMap(),
    val blocks: List<StateBlockLayout> = StateCodec.BUILT_IN_LAYOUT,
) {
    /** The flag bits whose every vector (over all blocks of that bit) is present. */
    val flags: Int
        get() = blocks.groupBy { it.flag }.filter { (_, same) -> same.all { b -> b.fields.all { it.name in optional } } }
            .keys.fold(0) { f, flag -> f or flag }
}

/** A decoded state file: its header fields and the state it holds. */
class StateFile(val formatVersion: Int, val fingerprintHex: String, val state: PersonalizationState)

/** One vector of a state block: [length] floats in this model, or, [perUnit], as many as the file's units. */
class StateField(val name: String, val length: Int, val perUnit: Boolean = false)

/**
 * One lever's state block as a model lays it out (metadata `state_blocks`, written by the export; for older
 * exports derived from [StateCodec.BUILT_IN]): its header flag bit, the first format version that carries it,
 * the signature that restores it and its vectors in file order.
 */
class StateBlockLayout(val lever: String, val flag: Int, val since: Int, val setSignature: String?, val fields: List<StateField>) {
    val names: List<String> get() = fields.map { it.name }
    fun length(field: StateField, units: Long): Long = if (field.perUnit) units else field.length.toLong()
}

/** What a state file must match: the model it is loaded into, with the state blocks it keeps (file order). */
class StateExpectation(val fingerprintHex: String, val numUnits: Int, val blocks: List<StateBlockLayout>) {
    /** A model the built-in table describes (an export from before its metadata carried `state_blocks`). */
    constructor(
        fingerprintHex: String,
        numUnits: Int,
        compensation: Boolean = false,
        numClasses: Int = 0, // > 0 only for prior-corrected models
        normChannels: Int = 0, // > 0 only for models with normalization statistics (metadata `normalization_layers`)
        headClasses: Int = 0, // > 0 only for models with classifier prototypes: C (metadata `num_classes`)
        headFeatures: Int = 0, // > 0 only for models with classifier prototypes: D (metadata `classifier_head[1]`)
        magnitudes: Boolean = false, // models exported with magnitude pruning (the `prune_magnitude` signature)
    ) : this(fingerprintHex, numUnits, StateCodec.builtIn(compensation, numClasses, normChannels, headClasses, headFeatures, magnitudes))

    val flags: Int get() = blocks.fold(0) { f, b -> f or b.flag }
}

/**
 * The binary state file format, versions 2 to 4, byte for byte as docs/state_format.md and
 * tflite_fineprune/state.py define it; a reader refuses every file the Python side refuses.
 * A file is written with the lowest version that can carry its blocks (at least 2): 3 with the
 * classifier-prototype vectors (flag bit 3), 4 with the activation magnitudes (flag bit 4).
 * Version-1 files (no normalization vectors) and version-2 files (no prototypes) are still read.
 * The blocks follow in flag-bit order; their layout comes from the model (a [StateExpectation]), so a
 * lever the table below lacks needs no change here; the table serves models exported before that.
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

    /** A block of the built-in table: its vectors' lengths named by the model dimension they follow. */
    class BuiltInBlock(val lever: String, val flag: Int, val setSignature: String, val fields: List<Pair<String, Length>>, val sinceVersion: Int = 1) {
        fun layout(dimension: (Length) -> Int) = StateBlockLayout(lever, flag, sinceVersion, setSignature,
            fields.map { (name, length) -> StateField(name, if (length == Length.UNITS) 0 else dimension(length), length == Length.UNITS) })
    }

    /** In file order (docs/state_format.md, the optional-vector table): the levers of exports without `state_blocks`. */
    val BUILT_IN = listOf(
        BuiltInBlock("mean_compensation", FLAG_COMPENSATION, "set_compensation", listOf("sums" to Length.UNITS, "fill" to Length.UNITS)),
        BuiltInBlock("prior_correction", FLAG_PRIORS, "set_priors", listOf("log_weights" to Length.CLASSES, "soft_counts" to Length.CLASSES)),
        BuiltInBlock("normalization_shift", FLAG_NORMALIZATION, "set_normalization",
            listOf("norm_sums", "norm_squares", "norm_count", "norm_mean", "norm_var").map { it to Length.CHANNELS }, sinceVersion = 2),
        // Classifier prototypes: counts N_c [C], sums S [C × D, class-major], the final Dense kernel in use [D × C].
        BuiltInBlock("classifier_prototypes", FLAG_PROTOTYPES, "set_prototypes",
            listOf("proto_counts" to Length.HEAD_CLASSES, "proto_sums" to Length.HEAD_WEIGHTS, "head_kernel" to Length.HEAD_WEIGHTS), sinceVersion = 3),
        // Magnitude pruning: per unit the summed per-sample mean |activation|.
        BuiltInBlock("magnitude_pruning", FLAG_MAGNITUDES, "set_magnitudes", listOf("magnitudes" to Length.UNITS), sinceVersion = MAGNITUDES_VERSION),
    )

    /** The built-in blocks with every model-sized length 0: names, flags and order only. */
    val BUILT_IN_LAYOUT = BUILT_IN.map { block -> block.layout { 0 } }

    /** The blocks a model the built-in table describes keeps, sized by its dimensions. */
    fun builtIn(compensation: Boolean, numClasses: Int, normChannels: Int, headClasses: Int, headFeatures: Int, magnitudes: Boolean): List<StateBlockLayout> {
        val used = mapOf(FLAG_COMPENSATION to compensation, FLAG_PRIORS to (numClasses > 0), FLAG_NORMALIZATION to (normChannels > 0),
            FLAG_PROTOTYPES to (headClasses > 0), FLAG_MAGNITUDES to magnitudes)
        return BUILT_IN.filter { used.getValue(it.flag) }.map { block ->
            block.layout { length ->
                when (length) {
                    Length.UNITS -> 0
                    Length.CLASSES -> numClasses
                    Length.CHANNELS -> normChannels
                    Length.HEAD_CLASSES -> headClasses
                    Length.HEAD_WEIGHTS -> headClasses * headFeatures
                }
            }
        }
    }

    private fun knownFlags(blocks: List<StateBlockLayout>, version: Int) = blocks.filter { it.since <= version }.fold(0) { f, b -> f or b.flag }

    fun encode(fingerprintHex: String, state: PersonalizationState): ByteArray {
        val n = state.masks.size
        if (state.counts.size != n) throw FinePruneException("masks (${state.masks.size}) and counts (${state.counts.size}) must be equal-length vectors")
        val fingerprint = hexToBytes(fingerprintHex)
        val flags = state.flags
        val written = state.blocks.filter { flags and it.flag != 0 }.sortedBy { it.flag }
        val extra = written.flatMap { block -> block.names.map { state.optional.getValue(it) } }
        val size = HEADER_BYTES + 5 * n + extra.sumOf { 4 * it.size } + 4
        val buf = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN)
        val version = maxOf(VERSION, written.maxOfOrNull { it.since } ?: VERSION)
        buf.put(MAGIC).putShort(version.toShort()).putShort(flags.toShort()).putInt(n).put(fingerprint).putDouble(state.samples)
        for (m in state.masks) buf.put(if (m > 0.5f) 1.toByte() else 0.toByte())
        for (c in state.counts) buf.putFloat(c)
        for (vector in extra) for (v in vector) buf.putFloat(v)
        val crc = CRC32().apply { update(buf.array(), 0, size - 4) }.value
        buf.putInt(crc.toInt())
        return buf.array()
    }

    /**
     * Parse and check a state file. With an [expectation] the file must belong to that model, and its
     * blocks are laid out as the model says; without one (a developer tool reading any file) the built-in
     * table is used and the class count is taken from the file size.
     */
    fun decode(blob: ByteArray, expectation: StateExpectation?, source: String = "state"): StateFile {
        if (blob.size < HEADER_BYTES + 4) throw FinePruneException("$source is not a tflite-fineprune state file: only ${blob.size} bytes")
        val buf = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
        val magic = ByteArray(8).also { buf.get(it) }
        if (!magic.contentEquals(MAGIC)) throw FinePruneException("$source is not a tflite-fineprune state file (magic ${printable(magic)}, expected ${printable(MAGIC)})")
        val version = buf.short.toInt() and 0xffff
        // The model's blocks, then any built-in block it lacks (a file carrying one is refused below, after its size is judged).
        val modelBlocks = expectation?.blocks ?: emptyList()
        val catalog = (modelBlocks + BUILT_IN_LAYOUT.filter { b -> modelBlocks.none { it.flag == b.flag } }).sortedBy { it.flag }
        // A block the model describes may come with a later format version than this app's table knows.
        val readable = READABLE_VERSIONS + (READABLE_VERSIONS.max() + 1..(catalog.maxOfOrNull { it.since } ?: 0))
        if (version !in readable) throw FinePruneException("$source has state format version $version; this app reads ${readable.joinToString()}")
        val flags = buf.short.toInt() and 0xffff
        if (flags and knownFlags(catalog, version).inv() != 0) throw FinePruneException("$source has unknown flags 0x${Integer.toHexString(flags)}")
        val units = buf.int.toLong() and 0xffffffffL
        val fingerprint = ByteArray(32).also { buf.get(it) }
        val samples = buf.double
        val present = catalog.filter { flags and it.flag != 0 }
        val lengths = HashMap<StateField, Long>()
        for (block in present) for (field in block.fields) lengths[field] = block.length(field, units)
        val sized = present.filter { block -> block.fields.any { !it.perUnit } }
        if (expectation == null && sized.isNotEmpty()) {
            if (sized.size != 1 || sized[0].flag == FLAG_PROTOTYPES) {
                throw FinePruneException("$source holds ${sized.flatMap { it.names }.joinToString("/")} vectors; their lengths need the model " +
                    "(C classes, B channels, D head features)")
            }
            // A tool reading any file: the one block whose length the units do not fix takes the rest of the file.
            val fixed = 5 * units + present.flatMap { it.fields }.filter { it.perUnit }.sumOf { 4L * units }
            val free = sized[0].fields.filter { !it.perUnit }
            for (field in free) lengths[field] = maxOf(0L, (blob.size - HEADER_BYTES - 4 - fixed) / (4L * free.size))
        }
        val expectedSize = HEADER_BYTES + 5 * units + present.flatMap { it.fields }.sumOf { 4L * lengths.getValue(it) } + 4
        if (blob.size.toLong() != expectedSize) throw FinePruneException("$source is truncated or padded: ${blob.size} bytes, expected $expectedSize for $units units")
        val crc = CRC32().apply { update(blob, 0, blob.size - 4) }.value.toInt()
        if (ByteBuffer.wrap(blob, blob.size - 4, 4).order(ByteOrder.LITTLE_ENDIAN).int != crc) throw FinePruneException("$source is corrupted: checksum mismatch")
        val hex = bytesToHex(fingerprint)
        if (expectation != null) {
            if (hex != expectation.fingerprintHex || units != expectation.numUnits.toLong()) {
                throw FinePruneException("$source belongs to another model (fingerprint ${hex.take(12)}…, $units units; " +
                    "this model is ${expectation.fingerprintHex.take(12)}…, ${expectation.numUnits} units)")
            }
            for (block in catalog) {
                val has = flags and block.flag != 0
                val wanted = expectation.flags and block.flag != 0
                // Version-1 files predate normalization statistics: the model then keeps its trained ones.
                if (!has && version < block.since) continue
                if (has != wanted) throw FinePruneException("$source ${if (has) "has" else "lacks"} ${block.names.joinToString("/")} values but the model " +
                    "${if (wanted) "uses" else "does not use"} them")
            }
        }
        val n = units.toInt()
        val rawMasks = ByteArray(n).also { buf.get(it) }
        val counts = FloatArray(n) { buf.float }
        val optional = LinkedHashMap<String, FloatArray>()
        for (block in present) for (field in block.fields) optional[field.name] = FloatArray(lengths.getValue(field).toInt()) { buf.float }
        val badMask = rawMasks.any { it.toInt() and 0xff > 1 }
        val badValues = !samples.isFinite() || samples < 0 || counts.any { !it.isFinite() } || optional.values.any { v -> v.any { !it.isFinite() } } ||
            (optional["proto_counts"]?.any { it < 0 } ?: false)
        if (badMask || badValues) throw FinePruneException("$source holds invalid values (masks not 0/1, or non-finite counters)")
        return StateFile(version, hex, PersonalizationState(FloatArray(n) { rawMasks[it].toFloat() }, counts, samples, optional, catalog))
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
