package org.tflitefineprune.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import org.tflitefineprune.core.AssetManifest
import org.tflitefineprune.core.AtomicFiles
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ImagePixels
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.Tensor
import org.tflitefineprune.core.WavReader
import java.io.File
import java.io.InputStream
import java.security.MessageDigest

/** Where bundled files are read from: the APK's assets on the phone. */
fun interface AssetSource {
    fun open(path: String): InputStream
}

/**
 * The files `tflite-fineprune android-assets` put into assets/: manifest, models, users' clips and images.
 * [storage] is where model files are copied (LiteRT maps models from files).
 */
class BundledAssets(private val source: AssetSource, private val storage: File) {
    val manifest: AssetManifest = AssetManifest.parse(read(MANIFEST).toString(Charsets.UTF_8))

    init {
        if (manifest.models.isEmpty()) throw FinePruneException("$MANIFEST lists no models: run `tflite-fineprune android-assets` again")
    }

    fun read(path: String): ByteArray = try {
        source.open(path).use { it.readBytes() }
    } catch (e: java.io.IOException) {
        throw FinePruneException("asset '$path' is missing: run `tflite-fineprune android-assets` before building (${e.message})")
    }

    /** The model as a file in app storage: the copy is reused only when its SHA-256 is the asset's. */
    fun modelFile(model: ModelSpec): File {
        val bytes = read(model.file)
        val file = File(storage, "models/${model.key}.tflite")
        if (!file.isFile || !sha256(file.readBytes()).contentEquals(sha256(bytes))) {
            file.parentFile?.mkdirs()
            AtomicFiles.write(file, bytes)
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

        private fun sha256(bytes: ByteArray): ByteArray = MessageDigest.getInstance("SHA-256").digest(bytes)

        fun audioSample(model: ModelSpec, samples: FloatArray): Tensor = model.sampleOfFloats(samples)

        /** A decoded bitmap (already subsampled for photos: see [PhotoDecoder]) as the model's input. */
        fun imageSample(model: ModelSpec, bitmap: Bitmap): Tensor {
            val size = model.imageSize ?: throw FinePruneException("model '${model.name}' is not an image model")
            val pixels = IntArray(bitmap.width * bitmap.height)
            bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
            return model.sample(ImagePixels.toRgb(pixels, bitmap.width, bitmap.height, size[1], size[0]))
        }
    }
}
