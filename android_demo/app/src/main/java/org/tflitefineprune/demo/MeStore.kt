package org.tflitefineprune.demo

import org.tflitefineprune.core.AtomicFiles
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.Tensor
import java.io.ByteArrayOutputStream
import java.io.DataInputStream
import java.io.DataOutputStream
import java.io.File

/**
 * Me's samples in app storage, one file per model (`me/<model>.samples`), written atomically like profiles,
 * so a process the system ended gives them back. Each sample is stored as the model's input bytes.
 */
class MeStore(root: File) {
    private val folder = File(root, "me")

    fun file(model: ModelSpec) = File(folder, "${model.key}.samples")

    fun save(model: ModelSpec, samples: List<Tensor>) {
        if (samples.isEmpty()) { file(model).delete(); return }
        val bytes = ByteArrayOutputStream()
        DataOutputStream(bytes).use { out ->
            out.writeInt(MAGIC)
            out.writeInt(samples.size)
            out.writeInt(sampleBytes(model))
            for (s in samples) {
                if (s.bytes.size != sampleBytes(model)) throw FinePruneException("a sample of ${s.bytes.size} bytes; the model takes ${sampleBytes(model)}")
                out.write(s.bytes)
            }
        }
        folder.mkdirs()
        AtomicFiles.write(file(model), bytes.toByteArray())
    }

    /** The saved samples; none when there is no file. A file for another input size is refused. */
    fun load(model: ModelSpec): List<Tensor> {
        val f = file(model)
        if (!f.isFile) return emptyList()
        DataInputStream(f.inputStream().buffered()).use { input ->
            val magic = input.readInt()
            val count = input.readInt()
            val size = input.readInt()
            if (magic != MAGIC || size != sampleBytes(model) || count < 0 || f.length() != 12L + count.toLong() * size) {
                throw FinePruneException("${f.name} does not hold samples of ${sampleBytes(model)} bytes for ${model.name}")
            }
            return List(count) { model.sample(ByteArray(size).also { input.readFully(it) }) }
        }
    }

    private fun sampleBytes(model: ModelSpec) = model.input.elements * model.input.dtype.bytes

    companion object {
        /** "FPME": a file of Me's samples. */
        private const val MAGIC = 0x46504d45
    }
}
