package org.tflitefineprune.demo

import android.Manifest
import android.app.Activity
import android.content.Intent
import android.net.Uri
import android.os.Looper
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.android.controller.ActivityController
import org.robolectric.annotation.Config
import org.robolectric.annotation.GraphicsMode
import org.tflitefineprune.core.AudioLevel
import org.tflitefineprune.core.AutoRecipe
import org.tflitefineprune.core.BundledUser
import org.tflitefineprune.core.PersonalizationSession
import org.tflitefineprune.core.Sparsity
import org.tflitefineprune.core.StateCodec
import org.tflitefineprune.core.Tensor
import org.tflitefineprune.core.WavReader
import org.tflitefineprune.core.probabilities
import java.io.File
import java.nio.file.Files
import java.security.MessageDigest

/**
 * The real MainActivity on Robolectric (SDK 34, real bitmap decoding), every model call answered by LiteRT
 * through [LiteRtBridge]: the numbers on screen are the model's, and the bundled users' must be the ones
 * Python measured (the manifest's).
 */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [34])
@GraphicsMode(GraphicsMode.Mode.NATIVE)
class MainActivityTest : ActivityTestBase() {
    @Test
    fun launchWithoutAssetsSaysWhatIsMissing() {
        DemoServices.assets = { FolderAssets(Files.createTempDirectory("empty").toFile()) }
        launch()
        assertTrue(activity.statusLine(), activity.statusLine().contains("asset 'manifest.json' is missing: run `tflite-fineprune android-assets`"))
        activity.assertShows("No model is loaded")
        activity.click("Users") // a tab with no model is a message, not a crash
        activity.assertShows("No model is loaded")
    }

    @Test
    fun anEmptyModelListOrABrokenInterpreterIsAMessage() {
        val folder = Files.createTempDirectory("nomodels").toFile()
        val text = File(assets.folder, "manifest.json").readText()
        val empty = kotlinx.serialization.json.JsonObject(assets.json + mapOf("models" to kotlinx.serialization.json.JsonArray(emptyList()),
            "users" to kotlinx.serialization.json.JsonArray(emptyList())))
        assertTrue(text.isNotEmpty())
        File(folder, "manifest.json").writeText(empty.toString())
        DemoServices.assets = { FolderAssets(folder) }
        launch()
        assertTrue(activity.statusLine(), activity.statusLine().contains("lists no models"))
        DemoServices.assets = { FolderAssets(assets.folder) }
        DemoServices.openModel = { throw IllegalArgumentException("Contents of the file do not encode a valid TFLite model") }
        restartProcess()
        assertTrue(activity.statusLine(), activity.statusLine().contains("the interpreter could not open models/"))
        assertTrue(activity.statusLine(), activity.statusLine().contains("do not encode a valid TFLite model"))
        activity.assertShows("No model is loaded")
    }

    @Test
    fun launchShowsTheModelAndCopiesItOnlyWhenItDiffers() {
        val first = assets.manifest.models.first()
        // A stale copy of the same size (an older export): replaced, not reused.
        val copy = File(org.robolectric.RuntimeEnvironment.getApplication().filesDir, "models/${first.key}.tflite")
        copy.parentFile!!.mkdirs()
        copy.writeBytes(ByteArray(first.fileBytes.toInt()) { 7 })
        launch()
        assertEquals("", activity.statusLine())
        activity.assertShows(first.name)
        activity.assertShows("prunable units: ${first.layout.numUnits} in ${first.layout.groups.size} layers")
        val digest = { b: ByteArray -> MessageDigest.getInstance("SHA-256").digest(b).toList() }
        assertEquals(digest(File(assets.folder, first.file).readBytes()), digest(copy.readBytes()))
        assertEquals(1, bridges.size)
    }

    @Test
    fun switchingModelsClosesTheOldInterpreterOnTheWorker() {
        launch()
        val other = assets.manifest.models.first { it.key != DemoState.model!!.key }
        activity.click("Switch to ${other.name}")
        settle()
        activity.assertShows(other.name)
        assertEquals(2, bridges.size)
        assertTrue("the first interpreter is closed", bridges[0].closed)
        assertFalse(bridges[1].closed)
        activity.click("Users")
        activity.assertShows(assets.manifest.users.first { it.model == other.key }.name)
    }

    @Test
    fun bundledUsersShowTheManifestsNumbersAndTheDenseSwitchComparesThem() {
        launch()
        for (kind in listOf("speech", "vision")) {
            switchTo(kind)
            val user = assets.user(kind)
            val expected = assets.json.getValue("users").jsonArray.map { it.jsonObject }.first { it["name"]!!.jsonPrimitive.content == user.name }
                .getValue("expected").jsonObject
            activity.click("Personalize")
            activity.click("Personalize for")
            settle()
            activity.assertShows("before: ${pct(user.expected.denseAccuracy)}   after: ${pct(user.expected.accuracy)}")
            activity.assertShows("removed: ${user.expected.prunedUnits}/${DemoState.model!!.layout.numUnits} units")
            activity.assertShows("recipe chosen: ${expected.getValue("chosen").jsonPrimitive.content}")
            // Dense / Personalized on the same held-out samples, without touching the saved profile.
            activity.click("Evaluate the model shown")
            settle()
            activity.assertShows("personalized ('${user.name}') model on ${user.name}'s held-out samples: ${pct(user.expected.accuracy)}")
            activity.click("Show dense")
            settle()
            activity.click("Evaluate the model shown")
            settle()
            activity.assertShows("dense model on ${user.name}'s held-out samples: ${pct(user.expected.denseAccuracy)}")
            activity.click("Show personalized")
            settle()
            assertEquals(user.name, DemoState.activeProfile)
        }
    }

    @Test
    fun profilesAreUsedRevertedSharedDeletedAndComeBackAfterRecreationAndRestart() {
        launch()
        switchTo("vision")
        val user = assets.user("vision") // a name with '+': stored and remembered under the same name
        activity.click("Personalize")
        activity.click("Personalize for")
        settle()
        activity.click("Profiles")
        activity.assertShows("${user.name} (active)")
        controller!!.recreate()
        settle()
        activity.assertShows("${user.name} (active)")
        restartProcess()
        assertEquals("vision", DemoState.model!!.kind)
        assertEquals(user.name, DemoState.activeProfile)
        assertEquals("profile '${user.name}' active", activity.statusLine())
        activity.click("Profiles") // listed by the job that opened the model, before any other job ran
        activity.assertShows("${user.name} (active)")
        // The restored profile is what the interpreter runs: the personalized accuracy, not the dense one.
        activity.click("Personalize")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("held-out samples: ${pct(user.expected.accuracy)}")

        activity.click("Profiles")
        activity.click("Revert to the dense model")
        settle()
        activity.assertShows("the dense model is in use")
        activity.assertShows(user.name)
        activity.click("Personalize")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("dense model on ${user.name}'s held-out samples: ${pct(user.expected.denseAccuracy)}")
        activity.click("Profiles")
        activity.click("Use ${user.name}")
        settle()
        activity.assertShows("${user.name} (active)")

        activity.click("Share ${user.name}")
        val chooser = shadowOf(activity).nextStartedActivity
        assertEquals(Intent.ACTION_CHOOSER, chooser.action)
        @Suppress("DEPRECATION")
        val send = chooser.getParcelableExtra<Intent>(Intent.EXTRA_INTENT)!!
        assertEquals(Intent.ACTION_SEND, send.action)
        assertEquals("application/octet-stream", send.type)
        @Suppress("DEPRECATION")
        val uri = send.getParcelableExtra<Uri>(Intent.EXTRA_STREAM)!!
        assertEquals("content://org.tflitefineprune.demo.profiles/vision/${Uri.encode(user.name)}.state", uri.toString())
        assertTrue(send.flags and Intent.FLAG_GRANT_READ_URI_PERMISSION != 0)
        // What the receiving app reads is the saved state file, a valid state of this model.
        val provider = Robolectric.setupContentProvider(ProfileProvider::class.java, ProfileProvider.AUTHORITY)
        val shared = provider.openFile(uri, "r").let { android.os.ParcelFileDescriptor.AutoCloseInputStream(it).use { s -> s.readBytes() } }
        val spec = assets.model("vision")
        StateCodec.decode(shared, spec.layout.stateExpectation(), "shared")
        assertArrayEquals(ProfileStore(activity.filesDir).file(spec, user.name).readBytes(), shared)

        activity.click("Delete ${user.name}")
        assertEquals("Delete profile '${user.name}'? This cannot be undone.", clickDialog(android.app.AlertDialog.BUTTON_NEGATIVE))
        assertEquals(listOf(user.name), ProfileStore(activity.filesDir).profiles(spec)) // cancelled: kept
        activity.click("Delete ${user.name}")
        clickDialog(android.app.AlertDialog.BUTTON_POSITIVE)
        settle()
        activity.assertShows("No profiles yet")
        assertNull(DemoState.activeProfile)
        restartProcess()
        assertNull(DemoState.activeProfile)
    }

    /** Launch, switch to the vision model, start Personalize for its bundled user and hold the job at its first
     *  interpreter call (the gate) so a test can act while it runs; the bundled user. */
    private fun personalizeVisionUserHeldAtTheInterpreter(): BundledUser {
        launch()
        switchTo("vision")
        val user = assets.user("vision")
        activity.click("Personalize")
        gate.close()
        activity.click("Personalize for")
        waitFor("the job to reach the interpreter") { gate.waiting == 1 }
        return user
    }

    @Test
    fun rotatingDuringPersonalizeKeepsTheJobAndStartsNoSecond() {
        val user = personalizeVisionUserHeldAtTheInterpreter()
        val before = activity
        controller!!.recreate()
        shadowOf(Looper.getMainLooper()).idle()
        assertSame(activity, DemoState.activity)
        assertTrue(before !== activity)
        assertEquals("personalizing", DemoState.job)
        activity.click("Personalize for")
        assertEquals("Busy personalizing: wait until it finishes.", activity.statusLine())
        gate.open()
        settle()
        activity.assertShows("before: ${pct(user.expected.denseAccuracy)}   after: ${pct(user.expected.accuracy)}")
        assertEquals(listOf(user.name), ProfileStore(activity.filesDir).profiles(DemoState.model!!))
    }

    @Test
    fun meRecordsClipsWithTheWordShownAndTheAutomaticRecipeDecidesAfterConsent() {
        launch()
        switchTo("speech")
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        val spec = assets.model("speech")
        val words = spec.layout.labels.filter { !it.startsWith("_") }
        val clips = assets.user("speech").eval.map { it.file }
        val stream = clips.flatMap { assets.pcm(it).toList() }.toShortArray()
        DemoServices.microphone = PcmMicrophone(stream)
        activity.click("Users")
        activity.assertShows("Words this model knows: ${words.joinToString(", ")}.")
        activity.click("Record a clip (say “${words[0]}”)")
        settle()
        assertTrue(activity.statusLine(), activity.statusLine().startsWith("recorded 1 of 1 clip; loudest 0.1 s: "))
        activity.assertShows("Me: 1 unlabeled sample of your own")
        activity.assertShows("Record a clip (say “${words[1]}”)") // the next word to say
        activity.click("Use Me")
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        activity.assertShows("too little data: 1 samples < 10; the model stays dense")
        activity.assertShows("Nothing would change")
        assertEquals("the recipe changed nothing; no profile saved", activity.statusLine())
        activity.click("OK")
        settle()
        assertNull(DemoState.consent)

        activity.click("Users")
        DemoServices.countdownSeconds = 1
        DemoServices.microphone = PcmMicrophone(stream, realTime = true) // each word's prompt is on screen while it records
        val said = ArrayList<String>()
        activity.click("Record 10 clips")
        waitFor("the countdown") { DemoState.status == "Recording in 1…" }
        // Each clip shows its word: the vocabulary in turn, after the 1 clip already recorded.
        while (DemoState.job != null) {
            DemoState.status.takeIf { it.startsWith("Say “") && said.lastOrNull() != it }?.let { said.add(it) }
            Thread.sleep(2)
            shadowOf(Looper.getMainLooper()).idle()
        }
        settle()
        assertEquals((1..10).map { "Say “${words[it % words.size]}” now (clip $it of 10)" }, said)
        activity.assertShows("Me: 11 unlabeled samples")
        // The countdown read (and dropped) one second; each clip is 1.5 s of microphone, the word's 1 s window kept.
        val me = DemoState.meSamples
        val second = 16000
        val clipLength = 24000
        val starts = listOf(0) + (0 until 10).map { second + it * clipLength }
        for ((i, start) in starts.withIndex()) {
            val recorded = WavReader.fromPcm16(stream.copyOfRange(start, start + clipLength), second).samples
            val want = SpeechWindow.centred(recorded, spec.input.elements)
            assertArrayEquals(want, me[i].floats(), 0f)
            // The window kept holds at least as much energy as the clip's first second.
            assertTrue(want.sumOf { (it * it).toDouble() } >= recorded.copyOf(second).sumOf { (it * it).toDouble() } - 1e-9)
        }
        // The loudest 0.1 s the level meter saw while recording (not during the countdown), in 1600-sample reads.
        val loudest = starts.drop(1).flatMap { start -> (0 until 15).map { start + it * 1600 } }
            .maxOf { AudioLevel.rms(WavReader.fromPcm16(stream.copyOfRange(it, it + 1600), second).samples) }
        assertEquals("recorded 10 of 10 clips; loudest 0.1 s: ${String.format(java.util.Locale.US, "%.0f", AudioLevel.dbfs(loudest))} dBFS",
            activity.statusLine())
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        val report = independently("speech") { AutoRecipe.personalize(it, me, spec.recipe.auto!!) }
        val state = independently("speech") { s -> AutoRecipe.personalize(s, me, spec.recipe.auto!!); s.getState() }
        activity.assertShows("recipe: ${report.recipe}")
        activity.assertShows("removed: ${Sparsity.measure(spec.layout, state.masks).prunedUnits}/${spec.layout.numUnits} units")
        assertNull("nothing is switched on before the user says yes", DemoState.activeProfile)
        if (report.steps.isNotEmpty()) {
            activity.click("Switch it on")
            settle()
            assertEquals("me", DemoState.activeProfile)
            activity.assertShows("Model running: personalized ('me')")
        }
    }

    /** [width]x[height] JPEG of the 32x32 [source] scaled up (nearest neighbour), optionally stored turned. */
    private fun photo(source: File, width: Int, height: Int, exifRotate90: Boolean): File {
        val small = javax.imageio.ImageIO.read(source)
        val w = if (exifRotate90) height else width
        val h = if (exifRotate90) width else height
        val big = java.awt.image.BufferedImage(w, h, java.awt.image.BufferedImage.TYPE_3BYTE_BGR)
        for (y in 0 until h) for (x in 0 until w) {
            // Stored turned 90° counter-clockwise: EXIF orientation 6 (rotate 90° clockwise to show) makes it upright.
            val (ux, uy) = if (exifRotate90) Pair(width - 1 - y, x) else Pair(x, y)
            big.setRGB(x, y, small.getRGB(ux * small.width / width, uy * small.height / height))
        }
        val file = File.createTempFile("photo", ".jpg")
        javax.imageio.ImageIO.write(big, "jpg", file)
        if (exifRotate90) {
            android.media.ExifInterface(file.path).apply {
                setAttribute(android.media.ExifInterface.TAG_ORIENTATION, android.media.ExifInterface.ORIENTATION_ROTATE_90.toString())
                saveAttributes()
            }
        }
        return file
    }

    private fun meanDifference(a: Tensor, b: ByteArray): Double =
        a.bytes.indices.sumOf { Math.abs((a.bytes[it].toInt() and 0xff) - (b[it].toInt() and 0xff)) }.toDouble() / b.size

    private fun rgb(file: File): ByteArray {
        val image = javax.imageio.ImageIO.read(file)
        val argb = image.getRGB(0, 0, image.width, image.height, null, 0, image.width)
        return org.tflitefineprune.core.ImagePixels.toRgb(argb, image.width, image.height, image.width, image.height)
    }

    @Test
    fun mePhotosAreDecodedSmallAndUprightAndPersonalize() {
        launch()
        switchTo("vision")
        val user = assets.user("vision")
        val sources = user.adapt.map { File(assets.folder, it) }
        assertEquals(32, PhotoDecoder.sampleSize(8192, 6144, 32, 32)) // decoded at 256x192, not 50 M pixels
        val huge = photo(sources[0], 8192, 6144, exifRotate90 = false)
        val turned = photo(sources[1], 320, 320, exifRotate90 = true)
        val picker = pick(listOf(huge, turned) + sources.drop(2).take(10))
        assertEquals(android.provider.MediaStore.ACTION_PICK_IMAGES, picker.action) // Android 13+: the system photo picker
        settle()
        assertEquals("added 12 photos", activity.statusLine())
        val me = DemoState.meSamples
        // The 50 MP photo: center-cropped to square, it is the 32x32 source's middle, scaled.
        assertTrue(meanDifference(me[0], rgb(sources[0])) < 40)
        // The EXIF-rotated photo is upright: close to its source, far from the source turned.
        val upright = meanDifference(me[1], rgb(sources[1]))
        assertTrue("EXIF-rotated photo differs from its upright source by $upright", upright < 8)
        val raw = rgb(sources[1])
        val turnedRaw = ByteArray(raw.size).also { t -> for (y in 0 until 32) for (x in 0 until 32) for (c in 0 until 3) t[3 * (y * 32 + x) + c] = raw[3 * (x * 32 + 31 - y) + c] }
        assertTrue(meanDifference(me[1], turnedRaw) > 2 * upright)

        activity.click("Use Me")
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        val spec = assets.model("vision")
        val report = independently("vision") { AutoRecipe.personalize(it, me, spec.recipe.auto!!) }
        activity.assertShows("recipe: ${report.recipe}")
        val state = independently("vision") { s -> AutoRecipe.personalize(s, me, spec.recipe.auto!!); s.getState() }
        activity.assertShows("removed: ${Sparsity.measure(spec.layout, state.masks).prunedUnits}/${spec.layout.numUnits} units")
    }

    @Test
    fun photosPickedWhileBusyAreQueuedThenAdded() {
        val user = personalizeVisionUserHeldAtTheInterpreter()
        pick(listOf(File(assets.folder, user.adapt[0])))
        assertEquals("1 photo queued: it is added when personalizing ends", activity.statusLine())
        gate.open()
        settle()
        assertEquals("added 1 photo", activity.statusLine())
        assertEquals(1, DemoState.meSamples.size)
    }

    @Test
    fun listenClassifiesOverlappingWindowsGatesSilenceAndStopsOnPause() {
        launch()
        switchTo("speech")
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        val spec = assets.model("speech")
        val clip = assets.user("speech").eval[0].file
        val pcm = assets.pcm(clip)
        val mic = PcmMicrophone(pcm)
        DemoServices.microphone = mic
        val window = WavReader.fit(WavReader.fromPcm16(pcm, 16000), spec.input.elements, 16000, clip)
        val p = independently("speech") { probabilities(it.scores(spec.sampleOfFloats(window))) }
        val best = p.indices.maxByOrNull { p[it] }!!
        activity.click("Listen")
        activity.click("Start listening")
        assertEquals("listening", DemoState.job)
        assertTrue(DemoState.listening)
        // The first window is the clip itself (16000 samples): the model's word and probability.
        waitFor("a word") { DemoState.heard.isNotEmpty() }
        // One window so far: its probabilities are the average; shown as a word only above the threshold.
        val word = spec.layout.labels[best]
        assertEquals(if (p[best] >= DemoState.listenThreshold) "$word ${pct(p[best])}" else "(not sure: $word ${pct(p[best])})", DemoState.heard)
        activity.assertShows(DemoState.heard)
        waitFor("the silence gate") { DemoState.heard == "(quiet)" }
        assertTrue(AudioLevel.dbfs(0.0) < AudioLevel.SILENCE_DBFS)
        controller!!.pause()
        settle()
        assertNull(DemoState.job)
        assertEquals("listening stopped", activity.statusLine())
        assertEquals("one microphone for the whole session", 1, mic.opens)
        assertEquals(1, mic.closes)
    }
}
