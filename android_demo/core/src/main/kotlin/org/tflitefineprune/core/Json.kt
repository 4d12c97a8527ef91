package org.tflitefineprune.core

import kotlinx.serialization.SerializationException
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonPrimitive

/** Small helpers over kotlinx.serialization's JSON tree: required fields with clear errors. */
internal object Json {
    fun <T> guard(source: String, block: () -> T): T = try {
        block()
    } catch (e: NoSuchElementException) {
        throw FinePruneException("$source is incomplete: ${e.message}")
    } catch (e: SerializationException) { // before IllegalArgumentException, its superclass
        throw FinePruneException("$source is not valid JSON: ${e.message}")
    } catch (e: IllegalArgumentException) {
        throw FinePruneException("$source has a field of the wrong type: ${e.message}")
    }
}

internal fun JsonObject.str(key: String): String = getValue(key).jsonPrimitive.content
internal fun JsonObject.int(key: String): Int = getValue(key).jsonPrimitive.content.toInt()
internal fun JsonObject.long(key: String): Long = getValue(key).jsonPrimitive.content.toDouble().toLong()
internal fun JsonObject.double(key: String): Double = getValue(key).jsonPrimitive.content.toDouble()
