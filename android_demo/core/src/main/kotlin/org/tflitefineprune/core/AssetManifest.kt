package org.tflitefineprune.core

import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive

/** One input or output of a signature, as the model file declares it (batch dimension included). */
class TensorSpec(val name: String, val dtype: DType, val shape: IntArray) {
    val elements: Int get() = shape.fold(1) { n, d -> n * d }
}

class SignatureSpec(val key: String, val inputs: List<TensorSpec>, val outputs: List<TensorSpec>) {
    fun input(name: String) = inputs.firstOrNull { it.name == name }
        ?: throw FinePruneException("signature '$key' has no input '$name'; it takes ${inputs.joinToString { it.name }}")
}

/** One signature call of a recipe, with its scalar arguments (dtypes come from the signature). */
class RecipeStep(val signature: String, val arguments: Map<String, Double>)

/** Either fixed [steps] or, with [auto], the automatic recipe (`AutoRecipe`, Python's `personalize`). */
class Recipe(val name: String, val steps: List<RecipeStep>, val auto: AutoRule? = null)

/** A bundled model: where its file is, what it takes, which recipe personalizes it. */
class ModelSpec(
    val key: String,
    val kind: String,
    val name: String,
    val file: String,
    val fileBytes: Long,
    val sampleRate: Int,
    val imageSize: IntArray?,
    val signatures: Map<String, SignatureSpec>,
    val recipe: Recipe,
    val layout: ModelLayout,
) {
    fun signature(key: String) = signatures[key]
        ?: throw FinePruneException("model '$name' has no '$key' signature; it has ${signatures.keys.joinToString()}")

    /** The model input of `infer` and `collect`: one sample per call, shape [1, ...]. */
    val input: TensorSpec get() = signature(Signatures.INFER).inputs.single()

    /** Wraps one sample's raw bytes as the model input. */
    fun sample(bytes: ByteArray): Tensor {
        val spec = input
        if (spec.shape.isEmpty() || spec.shape[0] != 1) throw FinePruneException("model '$name' input ${spec.shape.contentToString()} must take one sample per call")
        return Tensor(spec.dtype, spec.shape, bytes)
    }

    fun sampleOfFloats(values: FloatArray): Tensor = Tensor.ofFloats(input.shape, values).also {
        if (input.dtype != DType.FLOAT32) throw FinePruneException("model '$name' takes ${input.dtype.jsonName} input, not float32 audio")
    }
}

/** Expected results of the Python run on a bundled user: the numbers the phone must reproduce. */
class ExpectedResult(
    val denseAccuracy: Double,
    val accuracy: Double,
    val prunedUnits: Int,
    val unitSparsity: Double,
    val weightSparsity: Double,
    val macSparsity: Double,
    val excludedClasses: List<String>,
)

class LabeledFile(val file: String, val label: Int)

/** A bundled user: unlabeled adaptation files and labeled evaluation files (labels only for display). */
class BundledUser(val name: String, val model: String, val description: String, val adapt: List<String>, val eval: List<LabeledFile>, val expected: ExpectedResult)

/** `manifest.json` written by `tflite-fineprune android-assets`. */
class AssetManifest(val formatVersion: Int, val models: List<ModelSpec>, val users: List<BundledUser>) {
    fun model(key: String) = models.firstOrNull { it.key == key }
        ?: throw FinePruneException("the manifest has no model '$key'; it has ${models.joinToString { it.key }}")

    companion object {
        const val FORMAT = "tflite-fineprune-android-assets"
        const val FORMAT_VERSION = 1

        fun parse(text: String, source: String = "manifest.json"): AssetManifest = Json.guard(source) {
            val root = kotlinx.serialization.json.Json.parseToJsonElement(text).jsonObject
            if (root["format"]?.jsonPrimitive?.content != FORMAT) throw FinePruneException("$source is not a tflite-fineprune asset manifest (format ${root["format"]})")
            val version = root.int("format_version")
            if (version != FORMAT_VERSION) throw FinePruneException("$source has manifest format version $version; this app reads $FORMAT_VERSION")
            val models = root.getValue("models").jsonArray.map { parseModel(it.jsonObject, source) }
            val users = root.getValue("users").jsonArray.map { parseUser(it.jsonObject) }
            for (u in users) if (models.none { it.key == u.model }) throw FinePruneException("$source: user '${u.name}' refers to unknown model '${u.model}'")
            AssetManifest(version, models, users)
        }

        private fun tensors(json: JsonObject, key: String) = json.getValue(key).jsonArray.map { t ->
            val o = t.jsonObject
            TensorSpec(o.str("name"), DType.parse(o.str("dtype")), o.getValue("shape").jsonArray.map { it.jsonPrimitive.content.toInt() }.toIntArray())
        }

        private fun parseModel(o: JsonObject, source: String): ModelSpec {
            val signatures = o.getValue("signatures").jsonObject.mapValues { (key, s) -> SignatureSpec(key, tensors(s.jsonObject, "inputs"), tensors(s.jsonObject, "outputs")) }
            val recipe = o.getValue("recipe").jsonObject
            val auto = if (recipe["kind"]?.jsonPrimitive?.content == "auto") {
                AutoRule.of(recipe.getValue("rule").jsonObject.mapValues { it.value.jsonPrimitive.content.toDouble() })
            } else null
            val steps = if (auto != null) emptyList() else recipe.getValue("steps").jsonArray.map { s ->
                val step = s.jsonObject
                RecipeStep(step.str("signature"), step.getValue("inputs").jsonObject.mapValues { it.value.jsonPrimitive.content.toDouble() })
            }
            val size = o["image_size"]?.let { if (it is kotlinx.serialization.json.JsonNull) null else it.jsonArray.map { v -> v.jsonPrimitive.content.toInt() }.toIntArray() }
            val model = ModelSpec(
                o.str("key"), o.str("kind"), o.str("name"), o.str("file"), o.long("file_bytes"),
                o["sample_rate"]?.jsonPrimitive?.content?.toIntOrNull() ?: 0, size, signatures,
                Recipe(recipe.str("name"), steps, auto), ModelLayout.parse(o.getValue("metadata").jsonObject, "$source model ${o.str("key")}"),
            )
            for (step in steps) {
                val sig = model.signature(step.signature)
                for (name in step.arguments.keys) sig.input(name)
            }
            return model
        }

        private fun parseUser(o: JsonObject): BundledUser {
            val e = o.getValue("expected").jsonObject
            return BundledUser(
                o.str("name"), o.str("model"), o.str("description"),
                o.getValue("adapt").jsonArray.map { it.jsonPrimitive.content },
                o.getValue("eval").jsonArray.map { LabeledFile(it.jsonObject.str("file"), it.jsonObject.int("label")) },
                ExpectedResult(
                    e.double("dense_accuracy"), e.double("accuracy"), e.int("pruned_units"), e.double("unit_sparsity"),
                    e.double("weight_sparsity"), e.double("mac_sparsity"), e.getValue("excluded_classes").jsonArray.map { it.jsonPrimitive.content },
                ),
            )
        }
    }
}

/** Signature and argument names fixed by the file format (tflite_fineprune/signatures.py). */
object Signatures {
    const val INFER = "infer"
    const val COLLECT = "collect"
    const val RESET = "reset"
    const val GET_STATE = "get_state"
    const val SET_STATE = "set_state"
    const val OUTPUT = "output"
    /** collect's optional per-sample output: distance from the export's BN reference pool (> 1: atypical). */
    const val TYPICALITY = "typicality"
    const val MASKS = "masks"
    const val COUNTS = "counts"
    const val SAMPLES = "samples"
    const val TOKEN = "token"
    const val CLEAR_COUNTS = "clear_counts"
    const val CLEAR_MASKS = "clear_masks"

    /** Optional state vectors: the signature that sets them, by state-vector name. */
    val SETTERS = mapOf("sums" to "set_compensation", "fill" to "set_compensation", "log_weights" to "set_priors", "soft_counts" to "set_priors") +
        listOf("norm_sums", "norm_squares", "norm_count", "norm_mean", "norm_var").associateWith { "set_normalization" } +
        listOf("proto_sums", "proto_counts", "head_kernel").associateWith { "set_prototypes" } +
        mapOf("magnitudes" to "set_magnitudes")

    /** What the app needs besides the recipe's own signatures. */
    val REQUIRED = listOf(INFER, COLLECT, RESET, GET_STATE, SET_STATE)
}
