package org.tflitefineprune.demo

import org.tflitefineprune.core.AtomicFiles
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationState
import org.tflitefineprune.core.StateCodec
import java.io.File

/**
 * Each profile's state in app storage, in the same binary format as Python's `save_state`
 * (docs/state_format.md): `profiles/<model>/<profile>.state`, written atomically.
 */
class ProfileStore(root: File) {
    private val folder = File(root, "profiles")

    private fun file(model: ModelSpec, profile: String) = File(File(folder, model.key), "${safe(profile)}.state")

    fun profiles(model: ModelSpec): List<String> =
        File(folder, model.key).listFiles { f -> f.name.endsWith(".state") }?.map { it.name.removeSuffix(".state") }?.sorted() ?: emptyList()

    fun save(model: ModelSpec, profile: String, state: PersonalizationState) {
        val target = file(model, profile)
        target.parentFile?.mkdirs()
        AtomicFiles.write(target, StateCodec.encode(model.layout.fingerprint, state))
    }

    /** The saved state, checked against the model (a file from another model or a damaged one is refused). */
    fun load(model: ModelSpec, profile: String): PersonalizationState {
        val target = file(model, profile)
        return StateCodec.decode(target.readBytes(), model.layout.stateExpectation(), target.name).state
    }

    fun delete(model: ModelSpec, profile: String): Boolean = file(model, profile).delete()

    private fun safe(name: String) = name.replace(Regex("[^A-Za-z0-9._-]"), "_")
}
