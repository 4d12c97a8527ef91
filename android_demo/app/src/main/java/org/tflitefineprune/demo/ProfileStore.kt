package org.tflitefineprune.demo

import org.tflitefineprune.core.AtomicFiles
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationState
import org.tflitefineprune.core.StateCodec
import java.io.File

/**
 * Each profile's state in app storage, in the same binary format as Python's `save_state`
 * (docs/state_format.md): `profiles/<model>/<profile>.state`, written atomically.
 * A profile is known by its stored name ([stored]): what [save] returns, [profiles] lists and the app keeps
 * as the active profile, so a name such as `cifar-dog+frog+truck` is found again after a restart.
 */
class ProfileStore(root: File) {
    private val folder = File(root, "profiles")

    fun file(model: ModelSpec, profile: String) = File(File(folder, model.key), "${stored(profile)}.state")

    fun profiles(model: ModelSpec): List<String> =
        File(folder, model.key).listFiles { f -> f.name.endsWith(".state") }?.map { it.name.removeSuffix(".state") }?.sorted() ?: emptyList()

    /** Saves the state; returns the profile's stored name. */
    fun save(model: ModelSpec, profile: String, state: PersonalizationState): String {
        val target = file(model, profile)
        target.parentFile?.mkdirs()
        AtomicFiles.write(target, StateCodec.encode(model.layout.fingerprint, state))
        return stored(profile)
    }

    /** The saved state, checked against the model (a file from another model or a damaged one is refused). */
    fun load(model: ModelSpec, profile: String): PersonalizationState {
        val target = file(model, profile)
        return StateCodec.decode(target.readBytes(), model.layout.stateExpectation(), target.name).state
    }

    fun delete(model: ModelSpec, profile: String): Boolean = file(model, profile).delete()

    companion object {
        /** The name as stored: characters other than letters, digits, '.', '_', '+' and '-' become '_'. */
        fun stored(name: String): String {
            val safe = name.replace(Regex("[^A-Za-z0-9._+-]"), "_")
            return if (safe.isEmpty() || safe.all { it == '.' }) "_$safe" else safe
        }
    }
}
