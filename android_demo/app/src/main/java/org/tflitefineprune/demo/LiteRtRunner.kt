package org.tflitefineprune.demo

import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tflitefineprune.core.DType
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.Tensor
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Runs the exported model's signatures through LiteRT's Java API (`Interpreter.runSignature`). */
class LiteRtRunner(model: File, threads: Int = 2) : OpenedModel {
    private val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads))

    override val signatureKeys: List<String> get() = interpreter.signatureKeys.toList()

    override fun run(signature: String, inputs: Map<String, Tensor>): Map<String, Tensor> {
        if (signature !in interpreter.signatureKeys) throw FinePruneException("the model has no signature '$signature'")
        val feeds = HashMap<String, Any>()
        for ((name, tensor) in inputs) feeds[name] = tensor.toDirectBuffer()
        val outputs = HashMap<String, Any>()
        val names = interpreter.getSignatureOutputs(signature)
        for (name in names) {
            val spec = interpreter.getOutputTensorFromSignature(name, signature)
            outputs[name] = ByteBuffer.allocateDirect(spec.numBytes()).order(ByteOrder.nativeOrder())
        }
        interpreter.runSignature(feeds, outputs, signature)
        return names.associateWith { name ->
            val spec = interpreter.getOutputTensorFromSignature(name, signature)
            val buffer = outputs.getValue(name) as ByteBuffer
            buffer.rewind()
            val bytes = ByteArray(buffer.remaining()).also { buffer.get(it) }
            Tensor(dtypeOf(spec.dataType()), spec.shape(), bytes)
        }
    }

    override fun close() = interpreter.close()

    private fun dtypeOf(type: DataType): DType = when (type) {
        DataType.FLOAT32 -> DType.FLOAT32
        DataType.INT32 -> DType.INT32
        DataType.UINT8 -> DType.UINT8
        DataType.INT8 -> DType.INT8
        DataType.INT16 -> DType.INT16
        DataType.INT64 -> DType.INT64
        else -> throw FinePruneException("output dtype $type is not supported by this app")
    }
}
