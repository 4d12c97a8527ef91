package org.tflitefineprune.core

import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import java.io.File
import kotlin.system.exitProcess

/**
 * A developer tool (and the contract tests' bridge) around the Java/Kotlin state codec:
 *
 *     decode-state STATE_FILE          print the file as JSON
 *     encode-state IN.json OUT.state   write a state file from that same JSON shape
 */
object StateTool {
    fun toJson(file: StateFile): JsonObject {
        val s = file.state
        val body = linkedMapOf(
            "format_version" to JsonPrimitive(file.formatVersion),
            "flags" to JsonPrimitive(s.flags),
            "fingerprint" to JsonPrimitive(file.fingerprintHex),
            "samples" to JsonPrimitive(s.samples),
            "masks" to JsonArray(s.masks.map { JsonPrimitive(it.toInt()) }),
            "counts" to floats(s.counts),
        )
        for ((name, values) in s.optional) body[name] = floats(values)
        return JsonObject(body)
    }

    fun fromJson(json: JsonObject): Pair<String, PersonalizationState> = Json.guard("state JSON") {
        fun vector(name: String) = json.getValue(name).jsonArray.map { it.jsonPrimitive.content.toFloat() }.toFloatArray()
        val optional = StateCodec.BUILT_IN_LAYOUT.flatMap { it.names }.filter { it in json }.associateWith { vector(it) }
        json.str("fingerprint") to PersonalizationState(vector("masks"), vector("counts"), json.double("samples"), optional)
    }

    // Float.toString is the shortest text that reads back as the same float32.
    private fun floats(values: FloatArray) = JsonArray(values.map { JsonPrimitive(it) })

    fun run(args: Array<String>, err: java.io.PrintStream = System.err): Int {
        try {
            when {
                args.size == 2 && args[0] == "decode-state" -> {
                    val file = File(args[1])
                    if (!file.isFile) throw FinePruneException("state file '${args[1]}' does not exist")
                    println(toJson(StateCodec.decode(file.readBytes(), null, args[1])))
                }
                args.size == 3 && args[0] == "encode-state" -> {
                    val text = File(args[1]).takeIf { it.isFile }?.readText() ?: throw FinePruneException("JSON file '${args[1]}' does not exist")
                    val (fingerprint, state) = fromJson(Json.guard(args[1]) { kotlinx.serialization.json.Json.parseToJsonElement(text).jsonObject })
                    AtomicFiles.write(File(args[2]), StateCodec.encode(fingerprint, state))
                }
                else -> {
                    err.println("usage: decode-state STATE_FILE | encode-state IN.json OUT.state")
                    return 2
                }
            }
        } catch (e: FinePruneException) {
            err.println("error: ${e.message}")
            return 2
        }
        return 0
    }

    @JvmStatic
    fun main(args: Array<String>) {
        exitProcess(run(args))
    }
}
