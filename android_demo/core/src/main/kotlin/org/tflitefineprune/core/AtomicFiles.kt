package org.tflitefineprune.core

import java.io.File
import java.io.FileOutputStream
import java.io.IOException

/**
 * Files that hold either their old or their new content, never a mix (same steps as Python's atomic_write).
 * Only java.io for the write and the rename: java.nio.file arrived in Android 8 (API 26).
 */
object AtomicFiles {
    fun write(target: File, bytes: ByteArray) {
        val directory = target.absoluteFile.parentFile
        var tmp: File? = null
        try {
            tmp = File.createTempFile(".fineprune-", ".tmp", directory)
            FileOutputStream(tmp).use { out ->
                out.write(bytes)
                out.flush()
                out.fd.sync()
            }
            // rename(2): atomic within one folder, replaces the target.
            if (!tmp.renameTo(target)) throw IOException("cannot rename ${tmp.name} to ${target.name}")
            tmp = null
            syncDirectory(directory)
        } catch (e: IOException) {
            throw FinePruneException("cannot write ${target.path}: ${e.message}; any previous file is unchanged")
        } finally {
            tmp?.delete()
        }
    }

    // Makes the rename itself durable where the platform lets a directory be opened (java.nio.file: API 26+;
    // on older Android the class is missing and the rename stays as durable as the file system makes it).
    private fun syncDirectory(directory: File) {
        try {
            DirectorySync.force(directory)
        } catch (_: IOException) {
        } catch (_: UnsupportedOperationException) {
        } catch (_: LinkageError) {
        }
    }
}

/** Kept apart so that java.nio.file is only resolved when called (ART links classes lazily). */
private object DirectorySync {
    fun force(directory: File) {
        java.nio.channels.FileChannel.open(directory.toPath(), java.nio.file.StandardOpenOption.READ).use { it.force(true) }
    }
}
