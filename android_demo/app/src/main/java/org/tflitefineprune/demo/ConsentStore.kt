package org.tflitefineprune.demo

import org.tflitefineprune.core.AtomicFiles
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationResult
import org.tflitefineprune.core.Sparsity
import org.tflitefineprune.core.StateCodec
import java.io.ByteArrayOutputStream
import java.io.DataInputStream
import java.io.DataOutputStream
import java.io.EOFException
import java.io.File

/**
 * Me's question waiting for a yes or no ([Consent]), one file per model (`me/<model>.consent`), written
 * atomically like profiles: a process the system ends while the question waits asks it again after the restart,
 * with the same profile (the state is stored in the format of Python's `save_state`, checked against the model
 * when read back). The accuracies are not stored: Me has no labels.
 */
class ConsentStore(root: File) {
    private val folder = File(root, "me")

    fun file(model: ModelSpec) = File(folder, "${model.key}.consent")

    fun save(model: ModelSpec, consent: Consent) {
        val bytes = ByteArrayOutputStream()
        DataOutputStream(bytes).use { out ->
            out.writeInt(MAGIC)
            out.writeInt(VERSION)
            out.writeBoolean(consent.changes)
            out.writeInt(consent.samples)
            out.writeUTF(consent.recipe)
            out.writeInt(consent.notes.size)
            consent.notes.forEach { out.writeUTF(it) }
            out.writeInt(consent.predicted.size)
            for ((name, count) in consent.predicted) { out.writeUTF(name); out.writeInt(count) }
            out.writeInt(consent.excluded.size)
            consent.excluded.forEach { out.writeUTF(it) }
            out.writeBoolean(consent.inDomainShare != null)
            out.writeDouble(consent.inDomainShare ?: 0.0)
            out.writeLong(consent.result.millis)
            val state = StateCodec.encode(model.layout.fingerprint, consent.result.state)
            out.writeInt(state.size)
            out.write(state)
        }
        folder.mkdirs()
        AtomicFiles.write(file(model), bytes.toByteArray())
    }

    /** The waiting question for [model]; null when there is none. A damaged file or one for another model is refused. */
    fun load(model: ModelSpec): Consent? {
        val f = file(model)
        if (!f.isFile) return null
        val bytes = f.readBytes()
        try {
            DataInputStream(bytes.inputStream()).use { input ->
                if (input.readInt() != MAGIC) throw FinePruneException("${f.name} is not a saved question")
                val version = input.readInt()
                if (version != VERSION) throw FinePruneException("${f.name} has version $version; this app reads $VERSION")
                val changes = input.readBoolean()
                val samples = count(input)
                val recipe = input.readUTF()
                val notes = List(count(input)) { input.readUTF() }
                val predicted = List(count(input)) { input.readUTF() to input.readInt() }
                val excluded = List(count(input)) { input.readUTF() }
                val hasShare = input.readBoolean()
                val share = input.readDouble()
                val millis = input.readLong()
                val state = ByteArray(count(input)).also { input.readFully(it) }
                if (input.read() != -1) throw FinePruneException("${f.name} has bytes after its end")
                val stateFile = StateCodec.decode(state, model.layout.stateExpectation(), f.name)
                if (!stateFile.fingerprintHex.equals(model.layout.fingerprint, ignoreCase = true)) {
                    throw FinePruneException("${f.name} belongs to another model")
                }
                val decoded = stateFile.state
                val result = PersonalizationResult(Double.NaN, Double.NaN, Sparsity.measure(model.layout, decoded.masks),
                    model.layout.excludedClasses(decoded.masks), decoded, millis)
                return Consent(result, predicted, excluded, recipe, notes, if (hasShare) share else null, changes, samples)
            }
        } catch (e: EOFException) {
            throw FinePruneException("${f.name} is cut short")
        }
    }

    fun delete(model: ModelSpec) {
        file(model).delete()
    }

    private fun count(input: DataInputStream): Int =
        input.readInt().also { if (it < 0 || it > MAX_COUNT) throw FinePruneException("a saved question with a count of $it") }

    companion object {
        /** "FPCQ": Me's consent question. */
        private const val MAGIC = 0x46504351
        private const val VERSION = 1
        private const val MAX_COUNT = 1 shl 24
    }
}
