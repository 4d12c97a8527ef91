package org.tflitefineprune.core

/**
 * Turns decoded pixels (ARGB ints, as Android's Bitmap.getPixels and java.awt's getRGB give them)
 * into the uint8 HxWx3 RGB bytes an image model's input takes.
 */
object ImagePixels {
    /**
     * Pixels of the same size are copied exactly (the bundled images); larger photos are
     * center-cropped to the model's aspect ratio and box-averaged down to its size.
     */
    fun toRgb(argb: IntArray, width: Int, height: Int, targetWidth: Int, targetHeight: Int): ByteArray {
        if (argb.size != width * height || width < 1 || height < 1) {
            throw FinePruneException("image of ${width}x$height needs ${width * height} pixels, got ${argb.size}")
        }
        val out = ByteArray(targetWidth * targetHeight * 3)
        if (width == targetWidth && height == targetHeight) {
            for (i in argb.indices) {
                out[3 * i] = (argb[i] shr 16 and 0xff).toByte()
                out[3 * i + 1] = (argb[i] shr 8 and 0xff).toByte()
                out[3 * i + 2] = (argb[i] and 0xff).toByte()
            }
            return out
        }
        // Largest centered crop with the target's aspect ratio.
        val scale = minOf(width.toDouble() / targetWidth, height.toDouble() / targetHeight)
        val cropW = targetWidth * scale
        val cropH = targetHeight * scale
        val left = (width - cropW) / 2
        val top = (height - cropH) / 2
        for (ty in 0 until targetHeight) for (tx in 0 until targetWidth) {
            val x0 = (left + tx * scale).toInt()
            val x1 = maxOf(x0 + 1, minOf(width, (left + (tx + 1) * scale).toInt()))
            val y0 = (top + ty * scale).toInt()
            val y1 = maxOf(y0 + 1, minOf(height, (top + (ty + 1) * scale).toInt()))
            var r = 0L
            var g = 0L
            var b = 0L
            for (y in y0 until y1) for (x in x0 until x1) {
                val p = argb[y * width + x]
                r += p shr 16 and 0xff; g += p shr 8 and 0xff; b += p and 0xff
            }
            val n = (x1 - x0).toLong() * (y1 - y0)
            val o = 3 * (ty * targetWidth + tx)
            out[o] = ((r + n / 2) / n).toByte()
            out[o + 1] = ((g + n / 2) / n).toByte()
            out[o + 2] = ((b + n / 2) / n).toByte()
        }
        return out
    }
}
