package org.tflitefineprune.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Element types a signature input or output can have, named as numpy and the manifest name them. */
enum class DType(val jsonName: String, val bytes: Int) {
    FLOAT32("float32", 4), INT32("int32", 4), UINT8("uint8", 1), INT8("int8", 1), INT16("int16", 2), INT64("int64", 8);

    companion object {
        fun parse(name: String): DType =
            entries.firstOrNull { it.jsonName == name }
                ?: throw FinePruneException("unsupported tensor dtype '$name'; expected one of ${entries.joinToString { it.jsonName }}")
    }
}

/**
 * One signature input or output: dtype, shape and the raw little-endian bytes, exactly what the
 * interpreter reads or writes (so a replay can compare them byte for byte).
 */
class Tensor(val dtype: DType, val shape: IntArray, val bytes: ByteArray) {
    init {
        val expected = shape.fold(1L) { n, d -> n * d } * dtype.bytes
        if (expected != bytes.size.toLong()) {
            throw FinePruneException("tensor of shape ${shape.contentToString()} and dtype ${dtype.jsonName} needs $expected bytes, got ${bytes.size}")
        }
    }

    val size: Int get() = bytes.size / dtype.bytes

    private fun buffer(): ByteBuffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)

    fun floats(): FloatArray {
        require(dtype == DType.FLOAT32) { "expected a float32 tensor, got ${dtype.jsonName}" }
        return FloatArray(size).also { buffer().asFloatBuffer().get(it) }
    }

    fun ints(): IntArray {
        require(dtype == DType.INT32) { "expected an int32 tensor, got ${dtype.jsonName}" }
        return IntArray(size).also { buffer().asIntBuffer().get(it) }
    }

    /** A direct, native-order buffer holding the bytes, as TFLite's Java API wants its inputs. */
    fun toDirectBuffer(): ByteBuffer =
        ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).also {
            // Values are stored little-endian; Android devices are little-endian, as is x86.
            it.put(bytes); it.rewind()
        }

    override fun toString() = "${dtype.jsonName}${shape.contentToString()}"

    companion object {
        fun ofFloats(shape: IntArray, values: FloatArray): Tensor {
            val buf = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
            buf.asFloatBuffer().put(values)
            return Tensor(DType.FLOAT32, shape, buf.array())
        }

        fun ofInts(shape: IntArray, values: IntArray): Tensor {
            val buf = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
            buf.asIntBuffer().put(values)
            return Tensor(DType.INT32, shape, buf.array())
        }

        /** A scalar (shape []) of the given dtype; recipes carry their arguments as numbers. */
        fun scalar(dtype: DType, value: Double): Tensor = when (dtype) {
            DType.FLOAT32 -> ofFloats(IntArray(0), floatArrayOf(value.toFloat()))
            DType.INT32 -> ofInts(IntArray(0), intArrayOf(value.toInt()))
            else -> throw FinePruneException("recipe arguments must be float32 or int32 scalars, got ${dtype.jsonName}")
        }
    }
}

/** Runs one signature of the model: `infer`, `collect`, `prune`, ... with named inputs. */
fun interface SignatureRunner {
    fun run(signature: String, inputs: Map<String, Tensor>): Map<String, Tensor>
}

/** Bad input, a malformed file or a model that does not fit: the message says what was expected and found. */
class FinePruneException(message: String) : Exception(message)
