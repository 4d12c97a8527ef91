package org.tflitefineprune.core

import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import java.io.File

class ReplayMismatch(message: String) : AssertionError(message)

/** One recorded signature call (tflite_fineprune/converters/android_session.py): inputs sent, outputs the interpreter returned. */
class RecordedCall(val signature: String, val inputs: Map<String, Tensor>, val outputs: Map<String, Tensor>)

class Recording(val calls: List<RecordedCall>, val results: JsonObject) {
    companion object {
        fun load(index: File): Recording {
            val root = kotlinx.serialization.json.Json.parseToJsonElement(index.readText()).jsonObject
            val blob = File(index.parentFile, root.str("binary")).readBytes()
            fun tensors(o: JsonObject) = o.mapValues { (_, t) ->
                val spec = t.jsonObject
                val offset = spec.int("offset")
                Tensor(DType.parse(spec.str("dtype")), spec.getValue("shape").jsonArray.map { it.jsonPrimitive.content.toInt() }.toIntArray(),
                    blob.copyOfRange(offset, offset + spec.int("length")))
            }
            val calls = root.getValue("calls").jsonArray.map { c ->
                val o = c.jsonObject
                RecordedCall(o.str("signature"), tensors(o.getValue("inputs").jsonObject), tensors(o.getValue("outputs").jsonObject))
            }
            return Recording(calls, root.getValue("results").jsonObject)
        }
    }
}

/**
 * Stands in for the interpreter on the JVM: each call must be the next recorded one — same signature,
 * same input names, and per input the same dtype, shape and bytes — and gets the recorded outputs.
 */
class ReplayRunner(private val recording: Recording) : SignatureRunner {
    var position = 0
        private set

    override fun run(signature: String, inputs: Map<String, Tensor>): Map<String, Tensor> {
        if (position >= recording.calls.size) throw ReplayMismatch("call ${position + 1} ('$signature') is beyond the ${recording.calls.size} recorded calls")
        val expected = recording.calls[position]
        val where = "call ${position + 1}"
        if (signature != expected.signature) throw ReplayMismatch("$where: signature '$signature', recorded '${expected.signature}'")
        if (inputs.keys != expected.inputs.keys) throw ReplayMismatch("$where ($signature): inputs ${inputs.keys}, recorded ${expected.inputs.keys}")
        for ((name, want) in expected.inputs) {
            val got = inputs.getValue(name)
            if (got.dtype != want.dtype) throw ReplayMismatch("$where ($signature) input '$name': dtype ${got.dtype.jsonName}, recorded ${want.dtype.jsonName}")
            if (!got.shape.contentEquals(want.shape)) throw ReplayMismatch("$where ($signature) input '$name': shape ${got.shape.contentToString()}, recorded ${want.shape.contentToString()}")
            if (!got.bytes.contentEquals(want.bytes)) {
                val first = got.bytes.indices.first { got.bytes[it] != want.bytes[it] }
                throw ReplayMismatch("$where ($signature) input '$name': bytes differ from the recording, first at byte $first")
            }
        }
        position++
        return expected.outputs
    }

    fun assertFinished() {
        if (position != recording.calls.size) throw ReplayMismatch("the session made $position calls; the recording has ${recording.calls.size}")
    }
}
