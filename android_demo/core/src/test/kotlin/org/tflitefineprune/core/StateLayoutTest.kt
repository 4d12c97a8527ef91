package org.tflitefineprune.core

import kotlinx.serialization.json.Json as KotlinJson
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

/** The state blocks as the model lays them out (metadata `state_blocks`), not as the built-in table does. */
class StateLayoutTest {
    /** tests/data of the repository: golden state files written by Python, and the layout its export describes. */
    private val data: File = generateSequence(File("").absoluteFile) { it.parentFile }.map { File(it, "tests/data") }
        .firstOrNull { File(it, "state_v4_all.layout.json").isFile }
        ?: throw AssertionError("tests/data/state_v4_all.layout.json not found above ${File("").absolutePath}")

    @Test
    fun aPythonWrittenStateDecodesThroughTheModelsDescription() {
        val layout = KotlinJson.parseToJsonElement(File(data, "state_v4_all.layout.json").readText()).jsonObject
        val fingerprint = layout.getValue("fingerprint").jsonPrimitive.content
        val units = layout.getValue("num_units").jsonPrimitive.content.toInt()
        val blocks = ModelLayout.parseStateBlocks(layout.getValue("state_blocks"), "layout")
        assertEquals(listOf("mean_compensation", "prior_correction", "normalization_shift", "classifier_prototypes", "magnitude_pruning"), blocks.map { it.lever })
        val blob = File(data, "state_v4_all.bin").readBytes()
        val described = StateCodec.decode(blob, StateExpectation(fingerprint, units, blocks))
        // The same file through the built-in table (C = 3 classes, B = 4 channels, D = 2 features), as for older exports.
        val table = StateCodec.decode(blob, StateExpectation(fingerprint, units, true, 3, 4, 3, 2, magnitudes = true))
        assertEquals(4, described.formatVersion)
        assertEquals(table.state.optional.keys, described.state.optional.keys)
        for ((name, values) in table.state.optional) assertArrayEquals(name, values, described.state.optional.getValue(name), 0f)
        assertEquals(3 * 2, described.state.optional.getValue("proto_sums").size)
        assertEquals(31, described.state.flags)
        assertArrayEquals(blob, StateCodec.encode(fingerprint, described.state))
    }

    /** A lever the built-in table lacks (flag 32, format version 5): the model's description is all the codec needs. */
    private val guardLayout = """[
        {"lever": "mean_compensation", "flag": 1, "since": 1, "set_signature": "set_compensation",
         "fields": [{"name": "sums", "length": 4, "per_unit": true}, {"name": "fill", "length": 4, "per_unit": true}]},
        {"lever": "open_set_guard", "flag": 32, "since": 5, "set_signature": "set_guard",
         "fields": [{"name": "guard_scores", "length": 4, "per_unit": true}, {"name": "guard_threshold", "length": 2, "per_unit": false}]}
    ]"""

    @Test
    fun aNewLeversBlockNeedsNoCodecChange() {
        val fingerprint = "0123456789abcdef".repeat(4)
        val blocks = ModelLayout.parseStateBlocks(KotlinJson.parseToJsonElement(guardLayout), "model")
        val model = StateExpectation(fingerprint, 4, blocks)
        val optional = linkedMapOf("sums" to floatArrayOf(1f, 2f, 3f, 4f), "fill" to floatArrayOf(0f, 0.5f, 0f, 0f),
            "guard_scores" to floatArrayOf(0.1f, 0.2f, 0.3f, 0.4f), "guard_threshold" to floatArrayOf(0.75f, 2f))
        val state = PersonalizationState(floatArrayOf(1f, 0f, 1f, 1f), floatArrayOf(3f, 0.5f, 0f, 7.25f), 8.0, optional, blocks)
        assertEquals(33, state.flags)
        val blob = StateCodec.encode(fingerprint, state)
        assertEquals(56 + 5 * 4 + 4 * (4 + 4 + 4 + 2) + 4, blob.size)
        val file = StateCodec.decode(blob, model)
        assertEquals(5, file.formatVersion)
        for ((name, values) in optional) assertArrayEquals(name, values, file.state.optional.getValue(name), 0f)
        assertArrayEquals(blob, StateCodec.encode(fingerprint, file.state))
        // Checked like every block: a model without the lever refuses the file, and this model a file without it.
        refused({ StateCodec.decode(blob, StateExpectation(fingerprint, 4, compensation = true)) }, "state format version 5; this app reads 1, 2, 3, 4")
        val withoutGuard = StateCodec.encode(fingerprint, PersonalizationState(state.masks, state.counts, 8.0, optional.filterKeys { !it.startsWith("guard") }, blocks))
        assertEquals(2, StateCodec.decode(withoutGuard, model).formatVersion)  // a version-2 file predates the block: it loads
        refused({ StateCodec.decode(blob.copyOf(blob.size - 8), model) }, "truncated or padded")
    }

    private fun metadata(stateBlocks: String?) = KotlinJson.parseToJsonElement("""{"format_version": 1, "fingerprint": "${"ab".repeat(32)}",
        "labels": ["a", "b"], "num_classes": 2, "total_weights": 10, "total_macs": 10, "mean_compensation": true, "prior_correction": true,
        "groups": [{"name": "conv", "layer_class": "Conv2D", "units": 2, "offset": 0, "role": "hidden"},
                   {"name": "dense", "layer_class": "Dense", "units": 2, "offset": 2, "role": "output"}],
        "weight_layers": [], "signatures": ["infer", "prune_magnitude", "set_magnitudes"]
        ${if (stateBlocks == null) "" else ", \"state_blocks\": $stateBlocks"}}""").jsonObject

    @Test
    fun theLayoutComesFromTheModelAndOlderModelsUseTheBuiltInTable() {
        val older = ModelLayout.parse(metadata(null), "older.tflite")
        assertEquals(null, older.stateBlocks)
        val table = older.stateExpectation().blocks
        assertEquals(listOf("mean_compensation", "prior_correction", "magnitude_pruning"), table.map { it.lever })
        assertEquals(listOf(2, 2), table[1].fields.map { it.length })
        val described = ModelLayout.parse(metadata(guardLayout), "new.tflite")
        assertEquals(listOf("mean_compensation", "open_set_guard"), described.stateExpectation().blocks.map { it.lever })
        assertEquals("set_guard", described.stateExpectation().blocks[1].setSignature)
        // A state of the older model decodes through the built-in table; the described model refuses it (sized by its own blocks).
        val optional = linkedMapOf("sums" to FloatArray(4), "fill" to FloatArray(4), "log_weights" to floatArrayOf(0f, 0f),
            "soft_counts" to floatArrayOf(1f, 1f), "magnitudes" to FloatArray(4))
        val blob = StateCodec.encode(older.fingerprint, PersonalizationState(floatArrayOf(1f, 1f, 1f, 1f), FloatArray(4), 0.0, optional))
        assertEquals(optional.keys, StateCodec.decode(blob, older.stateExpectation()).state.optional.keys)
        refused({ StateCodec.decode(blob, described.stateExpectation()) }, "truncated or padded")
    }

    @Test
    fun aMalformedDescriptionIsRefused() {
        for ((json, says) in listOf("""[{"lever": "x", "flag": 3, "since": 5, "fields": []}]""" to "expected one bit",
                """[{"lever": "x", "flag": 32, "since": 5, "fields": [{"name": "a", "length": -1}]}]""" to "has length -1",
                """[{"lever": "x", "flag": 32, "since": 5}]""" to "fields")) {
            refused({ ModelLayout.parseStateBlocks(KotlinJson.parseToJsonElement(json), "m.tflite") }, says)
        }
    }

    private fun refused(action: () -> Unit, expected: String) {
        try {
            action()
        } catch (e: FinePruneException) {
            assertTrue("'${e.message}' should mention '$expected'", e.message!!.contains(expected))
            return
        }
        fail("accepted; expected an error mentioning '$expected'")
    }
}
