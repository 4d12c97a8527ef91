package org.tflitefineprune.core

import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive

/** The prunable units of one layer: its slice `[offset, offset + units)` of the flat mask vector. */
class UnitGroup(val name: String, val layerClass: String, val units: Int, val offset: Int, val role: String)

/** One segment of a weight layer's input channels: which unit group feeds it (null: not prunable). */
class InputSegment(val group: Int?, val channels: Int, val repeat: Int)

/** A layer holding weights, wired to the unit groups it reads and writes (metadata `weight_layers`). */
class WeightLayer(
    val name: String,
    val kind: String,
    val outGroup: Int?,
    val outChannels: Int,
    val inSegments: List<InputSegment>,
    val depthMultiplier: Int,
    val kernelPositions: Long,
    val outputPositions: Long,
    val paramsPerOutput: Long,
)

/** The model's self-description (the tflite-fineprune metadata embedded in the .tflite, copied into the manifest). */
class ModelLayout(
    val formatVersion: Int,
    val fingerprint: String,
    val labels: List<String>,
    val numClasses: Int,
    val groups: List<UnitGroup>,
    val weightLayers: List<WeightLayer>,
    val totalWeights: Long,
    val totalMacs: Long,
    val signatures: List<String>,
    val meanCompensation: Boolean,
    val priorCorrection: Boolean,
    /** BatchNorm layers with in-graph statistics (metadata `normalization_layers`: name, channels, offset). */
    val normalizationLayers: List<Triple<String, Int, Int>> = emptyList(),
    /** Classifier prototypes: D, the features into the final Dense layer (metadata `classifier_head[1]`); 0 = not exported. */
    val headFeatures: Int = 0,
    /** "logits" or "probabilities": what `infer` returns (metadata `output_kind`). */
    val outputKind: String = "logits",
    /** Each lever's state-block layout as the export recorded it (metadata `state_blocks`); null in exports from before it. */
    val stateBlocks: List<StateBlockLayout>? = null,
) {
    val normChannels: Int get() = normalizationLayers.sumOf { it.second }
    val numUnits: Int get() = groups.sumOf { it.units }
    val outputGroup: UnitGroup? get() = groups.firstOrNull { it.role == ROLE_OUTPUT }

    /** What a state file for this model must match. */
    fun stateExpectation() = stateBlocks?.let { StateExpectation(fingerprint, numUnits, it) }
        ?: StateExpectation(fingerprint, numUnits, meanCompensation, if (priorCorrection) numClasses else 0, normChannels,
            if (headFeatures > 0) numClasses else 0, headFeatures, magnitudes = AutoRecipe.PRUNE_MAGNITUDE in signatures)

    /** Labels of the classes whose output unit is masked. */
    fun excludedClasses(masks: FloatArray): List<String> {
        val group = outputGroup ?: return emptyList()
        return (0 until group.units).filter { masks[group.offset + it] == 0f }.map { labels.getOrElse(it) { "class $it" } }
    }

    companion object {
        const val ROLE_OUTPUT = "output"
        const val ROLE_HIDDEN = "hidden"

        fun parse(json: JsonObject, source: String): ModelLayout = Json.guard(source) {
            val groups = json.getValue("groups").jsonArray.map { g ->
                val o = g.jsonObject
                UnitGroup(o.str("name"), o.str("layer_class"), o.int("units"), o.int("offset"), o.str("role"))
            }
            var offset = 0
            for (g in groups) {
                if (g.offset != offset || g.units < 1) throw FinePruneException("$source: unit group '${g.name}' has an inconsistent offset or size")
                offset += g.units
            }
            val layers = json.getValue("weight_layers").jsonArray.map { w ->
                val o = w.jsonObject
                WeightLayer(
                    o.str("name"), o.str("kind"), o.optInt("out_group"), o.int("out_channels"),
                    o.getValue("in_segments").jsonArray.map { s ->
                        val a = s.jsonArray
                        InputSegment(optInt(a[0]), a[1].jsonPrimitive.content.toInt(), a[2].jsonPrimitive.content.toInt())
                    },
                    o.int("depth_multiplier"), o.long("kernel_positions"), o.long("output_positions"), o.long("params_per_output"),
                )
            }
            ModelLayout(
                json.int("format_version"), json.str("fingerprint"),
                json.getValue("labels").jsonArray.map { it.jsonPrimitive.content }, json.int("num_classes"),
                groups, layers, json.long("total_weights"), json.long("total_macs"),
                json.getValue("signatures").jsonArray.map { it.jsonPrimitive.content },
                json["mean_compensation"]?.jsonPrimitive?.content == "true",
                json["prior_correction"]?.jsonPrimitive?.content == "true",
                (json["normalization_layers"]?.jsonArray ?: emptyList()).map { e ->
                    val a = e.jsonArray
                    Triple(a[0].jsonPrimitive.content, a[1].jsonPrimitive.content.toInt(), a[2].jsonPrimitive.content.toInt())
                },
                (json["classifier_head"]?.jsonArray ?: emptyList()).getOrNull(1)?.jsonPrimitive?.content?.toInt() ?: 0,
                json["output_kind"]?.jsonPrimitive?.content ?: "logits",
                json["state_blocks"]?.let { parseStateBlocks(it, source) },
            )
        }

        /** Metadata `state_blocks`: each lever's block as levers/layout.py describes it. */
        fun parseStateBlocks(json: JsonElement, source: String): List<StateBlockLayout> = Json.guard(source) {
            val blocks = json.jsonArray.map { e ->
                val o = e.jsonObject
                val flag = o.int("flag")
                if (flag <= 0 || flag >= 1 shl 16 || flag and (flag - 1) != 0) throw FinePruneException("$source: state block '${o.str("lever")}' has flag $flag; expected one bit of 16")
                StateBlockLayout(o.str("lever"), flag, o.int("since"), o["set_signature"]?.takeIf { it !is JsonNull }?.jsonPrimitive?.content,
                    o.getValue("fields").jsonArray.map { f ->
                        val field = f.jsonObject
                        val length = field.int("length")
                        if (length < 0) throw FinePruneException("$source: state vector '${field.str("name")}' has length $length")
                        StateField(field.str("name"), length, field["per_unit"]?.jsonPrimitive?.content == "true")
                    })
            }
            if (blocks.map { it.flag }.toSet().size != blocks.size) throw FinePruneException("$source: state blocks repeat a flag bit")
            blocks
        }

        private fun optInt(e: JsonElement): Int? = if (e is JsonNull) null else e.jsonPrimitive.content.toInt()
        private fun JsonObject.optInt(key: String): Int? = this[key]?.let { optInt(it) }
    }
}
