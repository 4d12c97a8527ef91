package org.tflitefineprune.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.media.ExifInterface
import android.net.Uri
import java.io.File
import java.io.IOException

/**
 * A picked photo as a small, upright bitmap: decoded subsampled (a 50 MP photo never becomes 50 M pixels
 * in memory) and turned as its EXIF orientation says.
 */
object PhotoDecoder {
    /** Decoded pixels are kept at least this many times the model's input side, for the box average after. */
    private const val OVERSAMPLE = 4

    /**
     * Opens [uri] once (a cloud provider downloads it once) into a file in [cache], then reads its size, its
     * pixels and its EXIF orientation from that file.
     */
    fun decode(resolver: ContentResolver, uri: Uri, cache: File, targetWidth: Int, targetHeight: Int): Bitmap {
        val copy = File.createTempFile("photo", ".img", cache)
        try {
            (resolver.openInputStream(uri) ?: throw UserFacingException(R.string.photo_not_opened, uri.lastPathSegment ?: uri.toString())).use { input ->
                copy.outputStream().use { input.copyTo(it) }
            }
            return decode(copy, uri.lastPathSegment ?: uri.toString(), targetWidth, targetHeight)
        } finally {
            copy.delete()
        }
    }

    fun decode(file: File, name: String, targetWidth: Int, targetHeight: Int): Bitmap {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        BitmapFactory.decodeFile(file.path, bounds)
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw UserFacingException(R.string.photo_not_image, name)
        val options = BitmapFactory.Options().apply {
            inSampleSize = sampleSize(bounds.outWidth, bounds.outHeight, targetWidth, targetHeight)
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bitmap = BitmapFactory.decodeFile(file.path, options) ?: throw UserFacingException(R.string.photo_not_decoded, name)
        val orientation = try {
            ExifInterface(file.path).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        } catch (_: IOException) {
            ExifInterface.ORIENTATION_NORMAL // no readable EXIF block: as stored
        }
        return upright(bitmap, orientation)
    }

    /**
     * The largest power of two (BitmapFactory rounds down to one) that keeps both sides at least
     * [OVERSAMPLE] times the target's.
     */
    fun sampleSize(width: Int, height: Int, targetWidth: Int, targetHeight: Int): Int {
        var size = 1
        while (width / (size * 2) >= OVERSAMPLE * targetWidth && height / (size * 2) >= OVERSAMPLE * targetHeight) size *= 2
        return size
    }

    private fun upright(bitmap: Bitmap, orientation: Int): Bitmap {
        val m = Matrix()
        when (orientation) {
            ExifInterface.ORIENTATION_NORMAL, ExifInterface.ORIENTATION_UNDEFINED -> return bitmap
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> m.setScale(-1f, 1f)
            ExifInterface.ORIENTATION_ROTATE_180 -> m.setRotate(180f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> m.setScale(1f, -1f)
            ExifInterface.ORIENTATION_TRANSPOSE -> { m.setRotate(90f); m.postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_90 -> m.setRotate(90f)
            ExifInterface.ORIENTATION_TRANSVERSE -> { m.setRotate(-90f); m.postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_270 -> m.setRotate(-90f)
            else -> return bitmap
        }
        val turned = Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, m, true)
        if (turned !== bitmap) bitmap.recycle()
        return turned
    }
}
