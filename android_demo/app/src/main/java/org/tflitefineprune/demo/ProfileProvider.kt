package org.tflitefineprune.demo

import android.content.ContentProvider
import android.content.ContentValues
import android.database.Cursor
import android.database.MatrixCursor
import android.net.Uri
import android.os.ParcelFileDescriptor
import android.provider.OpenableColumns
import java.io.File
import java.io.FileNotFoundException

/**
 * Serves saved profiles read-only as `content://org.tflitefineprune.demo.profiles/<model>/<profile>.state`, so Share can
 * hand a state file to another app (framework-only: AndroidX's FileProvider is not available here).
 */
class ProfileProvider : ContentProvider() {
    override fun onCreate() = true

    private fun fileOf(uri: Uri): File {
        val segments = uri.pathSegments
        val root = File(context!!.filesDir, "profiles").canonicalFile
        val file = File(root, segments.joinToString("/")).canonicalFile
        if (segments.size != 2 || file.parentFile?.parentFile != root || !file.name.endsWith(".state") || !file.isFile) {
            throw FileNotFoundException("no saved profile at $uri")
        }
        return file
    }

    override fun openFile(uri: Uri, mode: String): ParcelFileDescriptor {
        if (mode != "r") throw SecurityException("profiles are shared read-only, not with mode '$mode'")
        return ParcelFileDescriptor.open(fileOf(uri), ParcelFileDescriptor.MODE_READ_ONLY)
    }

    override fun getType(uri: Uri) = MIME_TYPE

    override fun query(uri: Uri, projection: Array<out String>?, selection: String?, args: Array<out String>?, sort: String?): Cursor {
        val file = fileOf(uri)
        val columns = projection ?: arrayOf(OpenableColumns.DISPLAY_NAME, OpenableColumns.SIZE)
        return MatrixCursor(columns, 1).apply {
            addRow(columns.map { if (it == OpenableColumns.SIZE) file.length() else if (it == OpenableColumns.DISPLAY_NAME) file.name else null })
        }
    }

    override fun insert(uri: Uri, values: ContentValues?): Uri? = throw UnsupportedOperationException("profiles are read-only")
    override fun update(uri: Uri, values: ContentValues?, selection: String?, args: Array<out String>?) = 0
    override fun delete(uri: Uri, selection: String?, args: Array<out String>?) = 0

    companion object {
        /** Profiles are tflite-fineprune state files (docs/state_format.md), not a registered type. */
        const val MIME_TYPE = "application/octet-stream"

        /** As AndroidManifest.xml declares it (a literal: the APK script links the manifest as written). */
        const val AUTHORITY = "org.tflitefineprune.demo.profiles"

        fun uri(modelKey: String, storedName: String): Uri =
            Uri.Builder().scheme("content").authority(AUTHORITY).appendPath(modelKey).appendPath("$storedName.state").build()
    }
}
