package org.tflitefineprune.demo

import android.app.Activity
import android.os.Looper
import android.view.View
import android.view.ViewGroup
import android.widget.Button
import android.widget.TextView
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonObject
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.robolectric.Shadows.shadowOf
import org.tflitefineprune.core.AssetManifest
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.WavReader
import java.io.File
import java.util.Locale

/** The generated assets (`check.sh replay ASSETS RECORDINGS` passes the folder as fineprune.assets). */
object GeneratedAssets {
    val folder: File by lazy {
        val path = System.getProperty("fineprune.assets")?.takeIf { it.isNotBlank() && !it.startsWith("\${") }
            ?: throw AssertionError("no generated assets given: run the Activity tests through `check.sh replay ASSETS RECORDINGS`")
        File(path).also { assertTrue("$it has no manifest.json", File(it, "manifest.json").isFile) }
    }
    val manifest: AssetManifest by lazy { AssetManifest.parse(File(folder, "manifest.json").readText()) }
    val json: JsonObject by lazy { Json.parseToJsonElement(File(folder, "manifest.json").readText()).jsonObject }

    fun model(kind: String): ModelSpec = manifest.models.first { it.kind == kind }

    fun user(kind: String) = manifest.users.first { it.model == model(kind).key }

    /** A bundled WAV clip as the 16-bit PCM a microphone would deliver. */
    fun pcm(path: String): ShortArray {
        val audio = WavReader.read(File(folder, path).readBytes(), path)
        return ShortArray(audio.samples.size) { (audio.samples[it] * 32767f).toInt().coerceIn(-32768, 32767).toShort() }
    }
}

/** Runs the worker's jobs and the main thread's messages until no job is left. */
fun settle() {
    val deadline = System.currentTimeMillis() + 180_000
    while (true) {
        assertTrue("a job of the worker did not end", DemoState.awaitWorker())
        shadowOf(Looper.getMainLooper()).idle()
        if (DemoState.job == null) return
        if (System.currentTimeMillis() > deadline) fail("job '${DemoState.job}' did not end")
    }
}

/** Runs the main thread's messages until [condition] holds (for a job that does not end by itself). */
fun waitFor(what: String, condition: () -> Boolean) {
    val deadline = System.currentTimeMillis() + 60_000
    while (!condition()) {
        if (System.currentTimeMillis() > deadline) fail("timed out waiting for $what")
        Thread.sleep(5)
        shadowOf(Looper.getMainLooper()).idle()
    }
}

private fun views(view: View): List<View> =
    listOf(view) + if (view is ViewGroup) (0 until view.childCount).flatMap { views(view.getChildAt(it)) } else emptyList()

/** Every text on screen (labels and buttons), top to bottom. */
fun Activity.texts(): List<String> = views(window.decorView).filterIsInstance<TextView>().map { it.text.toString() }

fun Activity.screenText(): String = texts().joinToString("\n")

fun Activity.statusLine(): String = DemoState.status

fun Activity.assertShows(text: String) =
    assertTrue("the screen should show «$text»; it shows:\n${screenText()}", texts().any { it.contains(text) })

fun Activity.assertDoesNotShow(text: String) =
    assertTrue("the screen should not show «$text»; it shows:\n${screenText()}", texts().none { it.contains(text) })

/** Clicks the button whose label is [label] exactly, or else starts with it. */
fun Activity.click(label: String) {
    val buttons = views(window.decorView).filterIsInstance<Button>()
    val button = buttons.firstOrNull { it.text.toString() == label } ?: buttons.firstOrNull { it.text.toString().startsWith(label) }
    assertNotNull("no button «$label» on screen; buttons: ${buttons.map { it.text }}", button)
    button!!.performClick()
    shadowOf(Looper.getMainLooper()).idle()
}

fun pct(value: Double): String = String.format(Locale.US, "%.1f%%", 100 * value)

/** The latest dialog on screen: its message, then a click on its [which] button (AlertDialog.BUTTON_…). */
fun clickDialog(which: Int): String {
    val dialog = org.robolectric.shadows.ShadowAlertDialog.getLatestAlertDialog()
    assertNotNull("no dialog is shown", dialog)
    assertTrue("the dialog is not showing", dialog!!.isShowing)
    val message = shadowOf(dialog).message.toString()
    dialog.getButton(which).performClick()
    shadowOf(Looper.getMainLooper()).idle()
    return message
}

/**
 * What every Activity test shares: the app's services pointed at the generated assets and LiteRT in Python (each
 * interpreter behind [gate]), the Activity's controller, and a clean process after each test.
 */
abstract class ActivityTestBase {
    protected val assets = GeneratedAssets
    protected val bridges = ArrayList<LiteRtBridge>()
    protected val gate = Gate()
    protected var controller: org.robolectric.android.controller.ActivityController<MainActivity>? = null
    protected val activity: MainActivity get() = controller!!.get()

    @org.junit.Before
    fun services() {
        DemoServices.assets = { FolderAssets(assets.folder) }
        DemoServices.openModel = { file -> gate.wrap(LiteRtBridge(file).also { synchronized(bridges) { bridges.add(it) } }) }
        DemoServices.countdownSeconds = 0
    }

    @org.junit.After
    fun processEnds() {
        gate.open()
        DemoState.stopRequested = true
        DemoState.awaitWorker()
        DemoState.shutDown()
        DemoState.awaitWorker()
        synchronized(bridges) { bridges.forEach { it.close() } }
    }

    protected fun launch(saved: android.os.Bundle? = null): MainActivity {
        val built = org.robolectric.Robolectric.buildActivity(MainActivity::class.java)
        controller = if (saved == null) built.setup() else built.setup(saved)
        settle()
        return activity
    }

    /**
     * The process ends (its threads and memory go; files, preferences and [saved], the Activity's saved state,
     * stay) and the app starts again.
     */
    protected fun restartProcess(saved: android.os.Bundle? = null): MainActivity {
        controller!!.pause().stop().destroy()
        DemoState.awaitWorker()
        DemoState.shutDown()
        return launch(saved)
    }

    protected fun switchTo(kind: String) {
        if (DemoState.model!!.kind == kind) return
        activity.click("Start")
        activity.click("Switch to ${assets.model(kind).name}")
        settle()
        org.junit.Assert.assertEquals(kind, DemoState.model!!.kind)
    }

    /** A session of its own on a fresh interpreter: the model's answer, independent of the Activity. */
    protected fun <T> independently(kind: String, block: (org.tflitefineprune.core.PersonalizationSession) -> T): T {
        val spec = assets.model(kind)
        val copy = File(java.nio.file.Files.createTempDirectory("model").toFile(), "m.tflite").also { File(assets.folder, spec.file).copyTo(it) }
        return LiteRtBridge(copy).use { block(org.tflitefineprune.core.PersonalizationSession(spec, it)) }
    }

    /** Content URIs serving [files] (each open counted in [opens]), picked through the Users screen's picker. */
    protected fun pick(files: List<File>, opens: IntArray = IntArray(files.size)): android.content.Intent {
        val resolver = shadowOf(activity.contentResolver)
        val uris = files.mapIndexed { i, f ->
            android.net.Uri.parse("content://test.gallery/photo$i").also { uri ->
                resolver.registerInputStreamSupplier(uri) { opens[i]++; f.inputStream() }
            }
        }
        activity.click("Users")
        activity.click("Pick photos")
        val request = shadowOf(activity).nextStartedActivityForResult
        val data = android.content.Intent().apply {
            clipData = android.content.ClipData.newRawUri("photos", uris[0]).also { c -> uris.drop(1).forEach { c.addItem(android.content.ClipData.Item(it)) } }
        }
        shadowOf(activity).receiveResult(request.intent, Activity.RESULT_OK, data)
        shadowOf(Looper.getMainLooper()).idle()
        return request.intent
    }

    /** The Personalize screen's line naming what the interpreter runs. */
    protected fun assertRunning(label: String) {
        activity.click("Personalize")
        activity.assertShows("Model running: $label")
    }
}
