package org.tflitefineprune.demo

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import org.tflitefineprune.core.DType
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.Tensor
import java.io.BufferedInputStream
import java.io.ByteArrayOutputStream
import java.io.File
import java.io.InputStream

/**
 * The model's signatures run by LiteRT in a Python process (src/test/python/signature_bridge.py): the
 * interpreter the JVM cannot load, given the exact bytes the app sends. Python comes from the
 * `fineprune.python` system property (check.sh sets it).
 */
class LiteRtBridge(model: File) : OpenedModel {
    private val process: Process
    private val input: BufferedInputStream
    override val signatureKeys: List<String>
    @Volatile var closed = false
        private set

    init {
        val python = System.getProperty("fineprune.python")?.takeIf { it.isNotBlank() && !it.startsWith("\${") }
            ?: throw AssertionError("no Python with ai_edge_litert given: run the Activity tests through check.sh (fineprune.python)")
        process = ProcessBuilder(python, SCRIPT.path, model.path).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        input = BufferedInputStream(process.inputStream)
        val hello = header()
        signatureKeys = hello.getValue("signatures").jsonArray.map { it.jsonPrimitive.content }
    }

    private fun header(): JsonObject {
        val line = ByteArrayOutputStream()
        while (true) {
            val b = input.read()
            if (b < 0) throw FinePruneException("the LiteRT bridge ended (exit ${process.waitFor()})")
            if (b == '\n'.code) break
            line.write(b)
        }
        return Json.parseToJsonElement(line.toString(Charsets.UTF_8)).jsonObject
    }

    private fun InputStream.exactly(n: Int): ByteArray {
        val out = ByteArray(n)
        var read = 0
        while (read < n) {
            val k = read(out, read, n - read)
            if (k < 0) throw FinePruneException("the LiteRT bridge ended mid-tensor")
            read += k
        }
        return out
    }

    @Synchronized
    override fun run(signature: String, inputs: Map<String, Tensor>): Map<String, Tensor> {
        if (closed) throw AssertionError("signature '$signature' called on a closed interpreter")
        val specs = JsonArray(inputs.map { (name, t) ->
            JsonObject(mapOf("name" to JsonPrimitive(name), "dtype" to JsonPrimitive(t.dtype.jsonName),
                "shape" to JsonArray(t.shape.map { JsonPrimitive(it) }), "length" to JsonPrimitive(t.bytes.size)))
        })
        val out = process.outputStream
        out.write((JsonObject(mapOf("signature" to JsonPrimitive(signature), "inputs" to specs)).toString() + "\n").toByteArray())
        for (t in inputs.values) out.write(t.bytes)
        out.flush()
        val reply = header()
        reply["error"]?.let { throw IllegalArgumentException("LiteRT: ${it.jsonPrimitive.content}") }
        return reply.getValue("outputs").jsonArray.associate { o ->
            val spec = o.jsonObject
            val name = spec.getValue("name").jsonPrimitive.content
            name to Tensor(DType.parse(spec.getValue("dtype").jsonPrimitive.content),
                spec.getValue("shape").jsonArray.map { it.jsonPrimitive.int }.toIntArray(), input.exactly(spec.getValue("length").jsonPrimitive.int))
        }
    }

    @Synchronized
    override fun close() {
        if (closed) return
        closed = true
        process.outputStream.close()
        process.waitFor()
    }

    companion object {
        /** Surefire runs in the module folder (app/). */
        val SCRIPT = File("src/test/python/signature_bridge.py").absoluteFile
    }
}
