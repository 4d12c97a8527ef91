package org.tflitefineprune.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import org.tflitefineprune.core.AssetManifest
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ImagePixels
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.Tensor
import org.tflitefineprune.core.WavReader
import java.io.File

/** The files `tflite-fineprune android-assets` put into assets/: manifest, models, users' clips and images. */
class BundledAssets(private val context: Context) {
    val manifest: AssetManifest = AssetManifest.parse(read(MANIFEST).toString(Charsets.UTF_8))

    fun read(path: String): ByteArray = try {
        context.assets.open(path).use { it.readBytes() }
    } catch (e: java.io.IOException) {
        throw FinePruneException("asset '$path' is missing: run `tflite-fineprune android-assets` before building (${e.message})")
    }

    /** LiteRT maps models from files: the asset is copied to app storage once. */
    fun modelFile(model: ModelSpec): File {
        val file = File(context.filesDir, "models/${model.key}.tflite")
        if (!file.exists() || file.length() != model.fileBytes) {
            file.parentFile?.mkdirs()
            org.tflitefineprune.core.AtomicFiles.write(file, read(model.file))
        }
        return file
    }

    /** One bundled file decoded into the model's input: WAV clips for audio models, PNG/JPEG for image models. */
    fun sample(model: ModelSpec, path: String): Tensor = when (model.kind) {
        "speech" -> audioSample(model, WavReader.read(read(path), path).let { WavReader.fit(it, model.input.elements, model.sampleRate, path) })
        else -> {
            val bytes = read(path)
            val bitmap = BitmapFactory.decodeByteArray(bytes, 0, bytes.size) ?: throw FinePruneException("$path is not a readable image")
            imageSample(model, bitmap)
        }
    }

    companion object {
        const val MANIFEST = "manifest.json"

        fun audioSample(model: ModelSpec, samples: FloatArray): Tensor = model.sampleOfFloats(samples)

        fun imageSample(model: ModelSpec, bitmap: Bitmap): Tensor {
            val size = model.imageSize ?: throw FinePruneException("model '${model.name}' is not an image model")
            val pixels = IntArray(bitmap.width * bitmap.height)
            bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
            return model.sample(ImagePixels.toRgb(pixels, bitmap.width, bitmap.height, size[1], size[0]))
        }
    }
}
