package org.tflitefineprune.core

import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import java.nio.channels.FileChannel
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.nio.file.StandardOpenOption

/** Files that hold either their old or their new content, never a mix (same steps as Python's atomic_write). */
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
            Files.move(tmp.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
            tmp = null
            syncDirectory(directory)
        } catch (e: IOException) {
            throw FinePruneException("cannot write ${target.path}: ${e.message}; any previous file is unchanged")
        } finally {
            tmp?.delete()
        }
    }

    // Makes the rename itself durable; not every platform lets a directory be opened.
    private fun syncDirectory(directory: File) {
        try {
            FileChannel.open(directory.toPath(), StandardOpenOption.READ).use { it.force(true) }
        } catch (_: IOException) {
        } catch (_: UnsupportedOperationException) {
        }
    }
}
