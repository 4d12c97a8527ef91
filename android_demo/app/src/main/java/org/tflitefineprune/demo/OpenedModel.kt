package org.tflitefineprune.demo

import org.tflitefineprune.core.SignatureRunner
import java.io.Closeable
import android.content.Context
import java.io.File

/** A model file opened by an interpreter: runs its signatures until closed. */
interface OpenedModel : SignatureRunner, Closeable {
    val signatureKeys: List<String>
}

/**
 * What the app takes from outside itself: its assets, the interpreter and the microphone. The phone uses LiteRT and
 * AudioRecord; JVM tests, where TFLite's Android library cannot load, swap in their own (one process, so
 * one place).
 */
object DemoServices {
    @Volatile var openModel: (File) -> OpenedModel = { LiteRtRunner(it) }
    @Volatile var assets: (Context) -> AssetSource = { context -> AssetSource { context.assets.open(it) } }
    @Volatile var microphone: Microphone = AudioRecordMicrophone()
    /** Seconds counted down before a batch of clips is recorded (time to get ready to speak). */
    @Volatile var countdownSeconds: Int = 3
}
