package org.tflitefineprune.demo

import android.Manifest
import android.app.AlertDialog
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Insets
import android.os.Bundle
import android.provider.Settings
import android.view.View
import android.view.WindowInsets
import android.widget.Button
import android.widget.TextView
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.annotation.Config
import org.robolectric.annotation.GraphicsMode
import org.tflitefineprune.core.AutoRecipe
import org.tflitefineprune.core.Signatures
import org.tflitefineprune.core.probabilities
import java.io.File

/**
 * The real MainActivity against what the platform does to an app: permissions refused, the process ended and
 * recreated, a job that fails halfway, the photo picker, the window's insets, and what the user is asked before a
 * profile is switched on. Model calls are answered by LiteRT (see [MainActivityTest]).
 */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [34])
@GraphicsMode(GraphicsMode.Mode.NATIVE)
class MainActivityPlatformTest : ActivityTestBase() {
    private fun speechMicrophone(): PcmMicrophone {
        val clips = assets.user("speech").eval.map { it.file }
        return PcmMicrophone(clips.flatMap { assets.pcm(it).toList() }.toShortArray())
    }

    /** Taps Record a clip without the permission; returns the permission request the Activity made. */
    private fun recordWithoutPermission(): org.robolectric.shadows.ShadowActivity.PermissionsRequest {
        activity.click("Users")
        activity.click("Record a clip")
        val request = shadowOf(activity).lastRequestedPermission
        assertNotNull("the microphone permission was not requested", request)
        assertArrayEquals(arrayOf(Manifest.permission.RECORD_AUDIO), request.requestedPermissions)
        return request
    }

    private fun rationale(show: Boolean) =
        shadowOf(activity.packageManager).setShouldShowRequestPermissionRationale(Manifest.permission.RECORD_AUDIO, show)

    @Test
    fun theFirstScreenSaysWhatToDoAndTheTabsShowWhereYouAre() {
        launch()
        val user = assets.manifest.users.first { it.model == DemoState.model!!.key }
        activity.assertShows("Make the model yours, without labels")
        assertTrue(tab("Start").isSelected)
        assertFalse(tab("Personalize").isSelected)
        activity.click("Try a bundled user (${user.name})")
        assertEquals(Screen.PERSONALIZE, DemoState.screen)
        assertTrue(tab("Personalize").isSelected)
        assertFalse(tab("Start").isSelected)
        activity.assertShows("Personalize for ${user.name}")
        activity.click("Start")
        activity.click("Personalize for me")
        assertEquals(Screen.USERS, DemoState.screen)
        assertNull(DemoState.user)
        activity.assertShows("✓ Me")
        // Touch targets: every button at least 48 dp high.
        val density = activity.resources.displayMetrics.density
        for (button in buttons()) assertTrue("${button.text} is ${button.minHeight / density} dp high", button.minHeight >= 48 * density - 0.5)
        // The status line and the level meter speak to TalkBack.
        assertEquals(View.ACCESSIBILITY_LIVE_REGION_POLITE, statusView().accessibilityLiveRegion)
    }

    private fun views(view: View): List<View> =
        listOf(view) + if (view is android.view.ViewGroup) (0 until view.childCount).flatMap { views(view.getChildAt(it)) } else emptyList()

    private fun buttons() = views(activity.window.decorView).filterIsInstance<Button>()

    private fun tab(title: String) = buttons().first { it.text.toString() == title }

    private fun statusView() = views(activity.window.decorView).filterIsInstance<TextView>().first { it.text.toString() == DemoState.status }

    @Test
    fun theLabelIsWhatTheInterpreterRunsAfterEveryJob() {
        launch()
        switchTo("vision")
        val user = assets.user("vision")
        fun evaluated(): String {
            activity.click("Personalize")
            activity.click("Evaluate the model shown")
            settle()
            return DemoState.evaluation!!
        }
        val dense = "dense model on ${user.name}'s held-out samples: ${pct(user.expected.denseAccuracy)}"
        val personal = "personalized ('${user.name}') model on ${user.name}'s held-out samples: ${pct(user.expected.accuracy)}"
        assertRunning("dense")
        assertEquals(dense, evaluated())
        activity.click("Personalize for ${user.name}")
        settle()
        assertRunning("personalized ('${user.name}')")
        assertEquals(personal, evaluated())
        activity.click("Show dense")
        settle()
        assertRunning("dense")
        assertEquals(dense, evaluated())
        // Me's personalization while the dense model is shown: too few photos, nothing changes, the label stays
        // "dense" and so does the interpreter (the issue's case: the profile was reloaded under a "dense" label).
        pick(user.adapt.take(2).map { File(assets.folder, it) })
        settle()
        activity.click("Use Me")
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        activity.assertShows("Nothing would change")
        assertRunning("dense")
        activity.click("Users")
        activity.click("Use ${user.name}")
        assertEquals(dense, evaluated())
        activity.click("Show personalized")
        settle()
        assertRunning("personalized ('${user.name}')")
        assertEquals(personal, evaluated())
        activity.click("Profiles")
        activity.click("Revert to the dense model")
        settle()
        assertRunning("dense")
        assertEquals(dense, evaluated())
        activity.click("Profiles")
        activity.click("Use ${user.name}")
        settle()
        assertRunning("personalized ('${user.name}')")
        assertEquals(personal, evaluated())
    }

    @Test
    fun aJobThatFailsHalfwayPutsTheInterpreterBack() {
        launch()
        switchTo("vision")
        val user = assets.user("vision")
        activity.click("Personalize")
        activity.click("Personalize for ${user.name}")
        settle()
        assertRunning("personalized ('${user.name}')")
        // Personalizing again resets the interpreter, observes, and fails at the 20th sample observed.
        gate.failAfter(Signatures.COLLECT, 20)
        activity.click("Personalize for ${user.name}")
        settle()
        val status = activity.statusLine()
        assertTrue(status, status.startsWith("personalizing failed: ") && "injected failure in 'collect'" in status)
        assertTrue(status, status.endsWith("; the model is back to profile '${user.name}'"))
        assertRunning("personalized ('${user.name}')")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("personalized ('${user.name}') model on ${user.name}'s held-out samples: ${pct(user.expected.accuracy)}")
        // And from the dense model: a failed switch to the profile leaves it dense.
        activity.click("Show dense")
        settle()
        gate.failAfter(Signatures.SET_STATE, 0)
        activity.click("Show personalized")
        settle()
        assertTrue(activity.statusLine(), activity.statusLine().endsWith("the model is back to the dense model"))
        assertRunning("dense")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("dense model on ${user.name}'s held-out samples: ${pct(user.expected.denseAccuracy)}")
    }

    @Test
    fun meSeesWhatPersonalizingFoundAndNothingIsSwitchedOnWithoutAYes() {
        launch()
        switchTo("vision")
        val user = assets.user("vision")
        val spec = assets.model("vision")
        val files = user.adapt.map { File(assets.folder, it) }
        pick(files)
        settle()
        val me = DemoState.meSamples
        assertEquals(files.size, me.size)
        activity.click("Use Me")
        activity.assertShows("Classes this model knows: ${spec.layout.labels.joinToString(", ")}.")
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        val report = independently("vision") { AutoRecipe.personalize(it, me, spec.recipe.auto!!) }
        assertTrue("this user's photos exclude classes", report.excluded.isNotEmpty())
        val counts = report.classCounts.indices.filter { report.classCounts[it] > 0 }.sortedByDescending { report.classCounts[it] }
        activity.assertShows("Your samples, as the model classifies them now: " + counts.joinToString(", ") { "${spec.layout.labels[it]} ${report.classCounts[it]}" })
        activity.assertShows("Classes it would exclude (${report.excluded.size}): ${report.excluded.joinToString(", ")}.")
        val share = Consent.inDomainShare(report)
        activity.assertShows(if (share == null) "In-domain share: not reported by this version of the recipe." else "In-domain share: ${pct(share)} of your samples")
        activity.assertShows("Switch this profile on?")
        assertNull(DemoState.activeProfile)
        assertEquals(emptyList<String>(), ProfileStore(activity.filesDir).profiles(spec))
        // While the question waits, the interpreter still runs the dense model.
        activity.click("Users")
        activity.click("Use ${user.name}")
        activity.click("Personalize")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("dense model on ${user.name}'s held-out samples: ${pct(user.expected.denseAccuracy)}")
        activity.click("Users")
        activity.click("Use Me")
        activity.click("Personalize")
        activity.click("Discard")
        settle()
        assertEquals("discarded: the model is unchanged", activity.statusLine())
        assertEquals(emptyList<String>(), ProfileStore(activity.filesDir).profiles(spec))
        activity.click("Personalize for me")
        settle()
        activity.click("Switch it on")
        settle()
        assertEquals("me", DemoState.activeProfile)
        assertEquals(listOf("me"), ProfileStore(activity.filesDir).profiles(spec))
        assertRunning("personalized ('me')")
        activity.assertShows("classes excluded: ${report.excluded.joinToString()}")
    }

    /** Me's photos (the bundled CIFAR user's adaptation half) personalized: the consent question on screen. */
    private fun askMe(): Consent {
        switchTo("vision")
        pick(assets.user("vision").adapt.map { File(assets.folder, it) })
        settle()
        activity.click("Use Me")
        activity.click("Personalize")
        activity.click("Personalize for me")
        settle()
        activity.assertShows("Switch this profile on?")
        return DemoState.consent!!
    }

    /** The consent screen's read-outs: what the model made of the samples, what it would exclude, the guard, the cost. */
    private fun consentLines(): List<String> = activity.texts().filter { line ->
        listOf("Your samples, as the model classifies them now: ", "Classes it would exclude", "In-domain share: ", "recipe: ", "removed: ")
            .any { line.startsWith(it) }
    }

    @Test
    fun aQuestionWaitingWhenTheProcessEndsIsAskedAgainAndAppliedOnlyOnAYes() {
        launch()
        val spec = assets.model("vision")
        val asked = askMe()
        val lines = consentLines()
        assertEquals(lines.toString(), 5, lines.size)
        val profile = org.tflitefineprune.core.StateCodec.encode(spec.layout.fingerprint, asked.result.state)
        val saved = Bundle()
        controller!!.saveInstanceState(saved)
        restartProcess(saved)
        // The new process asks the same question, with the same numbers, and has switched nothing on.
        assertEquals(Screen.PERSONALIZE, DemoState.screen)
        assertNull("Me is still the chosen user", DemoState.user)
        activity.assertShows("What personalizing found")
        assertEquals(lines, consentLines())
        activity.assertShows("Switch this profile on?")
        assertNull(DemoState.activeProfile)
        assertEquals(emptyList<String>(), ProfileStore(activity.filesDir).profiles(spec))
        activity.assertShows("Model running: dense")
        assertNull(DemoState.held!!.profile)
        // Yes: the profile switched on is the one computed before the process ended, byte for byte.
        activity.click("Switch it on")
        settle()
        assertEquals("me", DemoState.activeProfile)
        assertArrayEquals(profile, ProfileStore(activity.filesDir).file(spec, "me").readBytes())
        assertFalse("the answered question is gone from storage", ConsentStore(activity.filesDir).file(spec).exists())
        assertRunning("personalized ('me')")
        activity.assertShows("classes excluded: ${asked.excluded.joinToString()}")
        // And the interpreter runs it: the bundled user's held-out accuracy equals an independent session's with it.
        val user = assets.user("vision")
        val expected = independently("vision") { s ->
            s.setState(asked.result.state)
            s.accuracy(user.eval.map { DemoState.assets!!.sample(spec, it.file) }, user.eval.map { it.label }.toIntArray())
        }
        activity.click("Users")
        activity.click("Use ${user.name}")
        activity.click("Personalize")
        activity.click("Evaluate the model shown")
        settle()
        activity.assertShows("personalized ('me') model on ${user.name}'s held-out samples: ${pct(expected)}")
        restartProcess(saved)
        activity.assertDoesNotShow("Switch this profile on?")
    }

    @Test
    fun aDiscardedOrDamagedQuestionIsNotAskedAgain() {
        launch()
        val spec = assets.model("vision")
        askMe()
        val saved = Bundle()
        controller!!.saveInstanceState(saved)
        restartProcess(saved)
        activity.assertShows("Switch this profile on?")
        activity.assertDoesNotShow("personalize again to use them all")
        // A photo added while the question waits: the screen says the answer is about the samples before it.
        val n = DemoState.meSamples.size
        pick(listOf(File(assets.folder, assets.user("vision").eval[0].file)))
        settle()
        activity.click("Personalize")
        activity.assertShows("This was found on $n samples; Me has ${n + 1} now: personalize again to use them all.")
        activity.click("Discard")
        settle()
        assertEquals("discarded: the model is unchanged", activity.statusLine())
        assertFalse(ConsentStore(activity.filesDir).file(spec).exists())
        restartProcess(saved)
        activity.assertDoesNotShow("Switch this profile on?")
        assertEquals(emptyList<String>(), ProfileStore(activity.filesDir).profiles(spec))
        // A question file cut short (a damaged disk): said on the status line, nothing applied, the file removed.
        activity.click("Personalize for me")
        settle()
        val file = ConsentStore(activity.filesDir).file(spec)
        file.writeBytes(file.readBytes().copyOf(file.length().toInt() / 2))
        restartProcess(saved)
        assertTrue(activity.statusLine(), activity.statusLine().startsWith("could not read the question that was waiting (personalize again): "))
        activity.assertDoesNotShow("Switch this profile on?")
        activity.assertShows("Model running: dense")
        assertNull(DemoState.activeProfile)
        assertFalse(file.exists())
    }

    @Test
    fun aRefusedMicrophoneSaysSoAndRecordsNothing() {
        launch()
        switchTo("speech")
        val mic = speechMicrophone()
        DemoServices.microphone = mic
        val request = recordWithoutPermission()
        rationale(true) // refused once: Android would explain next time
        activity.onRequestPermissionsResult(request.requestCode, request.requestedPermissions, intArrayOf(PackageManager.PERMISSION_DENIED))
        settle()
        assertEquals("The microphone permission was refused: recording and Listen need it.", activity.statusLine())
        assertFalse(DemoState.microphoneBlocked)
        activity.assertDoesNotShow("Open Settings")
        assertEquals(0, mic.opens)
        assertEquals(0, DemoState.meSamples.size)
    }

    @Test
    fun aRationaleComesBeforeAskingAgainAndAGrantRecords() {
        launch()
        switchTo("speech")
        val mic = speechMicrophone()
        DemoServices.microphone = mic
        rationale(true)
        activity.click("Users")
        activity.click("Record a clip")
        assertNull("no system dialog before the rationale", shadowOf(activity).lastRequestedPermission)
        assertEquals("Recording clips of your voice and Listen need the microphone. The clips stay on this phone.",
            clickDialog(AlertDialog.BUTTON_POSITIVE))
        val request = shadowOf(activity).lastRequestedPermission
        assertNotNull(request)
        // The dialog is answered after a rotation: the pending recording is in the saved state and still runs.
        controller!!.recreate()
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        activity.onRequestPermissionsResult(request.requestCode, request.requestedPermissions, intArrayOf(PackageManager.PERMISSION_GRANTED))
        settle()
        assertEquals(1, mic.opens)
        assertEquals(1, DemoState.meSamples.size)
    }

    @Test
    fun aMicrophoneRefusedForGoodLeadsToSettings() {
        launch()
        switchTo("speech")
        DemoServices.microphone = speechMicrophone()
        val request = recordWithoutPermission()
        rationale(false) // refused with "don't ask again": no dialog will show any more
        activity.onRequestPermissionsResult(request.requestCode, request.requestedPermissions, intArrayOf(PackageManager.PERMISSION_DENIED))
        settle()
        assertEquals("The microphone permission was refused for good: allow it in Settings to record.", activity.statusLine())
        assertTrue(DemoState.microphoneBlocked)
        activity.click("Open Settings")
        val settings = shadowOf(activity).nextStartedActivity
        assertEquals(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, settings.action)
        assertEquals("package:${activity.packageName}", settings.data.toString())
        activity.click("Listen")
        activity.assertShows("Open Settings")
    }

    @org.junit.After
    fun noAudioSource() = org.robolectric.shadows.ShadowAudioRecord.clearSource()

    @Test
    fun aMicrophoneThatCannotStartIsReleasedAndTheNextRecordingWorks() {
        launch()
        switchTo("speech")
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        val spec = assets.model("speech")
        val stream = assets.user("speech").eval.flatMap { assets.pcm(it.file).toList() }.toShortArray()
        var position = 0
        org.robolectric.shadows.ShadowAudioRecord.setSourceProvider { _ -> object : org.robolectric.shadows.ShadowAudioRecord.AudioRecordSource {
            override fun readInShortArray(buffer: ShortArray, offset: Int, length: Int, blocking: Boolean): Int {
                for (i in 0 until length) buffer[offset + i] = stream[position++ % stream.size]
                return length
            }
        } }
        val recorders = Recorders(1) // the first recorder does not start: another app holds the microphone
        DemoServices.microphone = AudioRecordMicrophone(recorders::make)
        activity.click("Users")
        activity.click("Record a clip")
        settle()
        assertEquals("recording 1 clip failed: the microphone is in use by another app; the model is back to the dense model", activity.statusLine())
        assertEquals("the recorder is released", android.media.AudioRecord.STATE_UNINITIALIZED, recorders.made.single().state)
        assertEquals(0, position)
        assertNull(DemoState.job)
        assertEquals(-1, DemoState.level) // the level meter is gone
        assertEquals(0, DemoState.meSamples.size)
        assertFalse(MeStore(activity.filesDir).file(spec).exists())
        activity.assertShows("Me: 0 unlabeled samples of your own")
        // Tapped again: a new recorder, the clip recorded from the start of what the microphone hears.
        activity.click("Record a clip")
        settle()
        assertTrue(activity.statusLine(), activity.statusLine().startsWith("recorded 1 of 1 clip; loudest 0.1 s: "))
        assertEquals(2, recorders.made.size)
        assertEquals(android.media.AudioRecord.STATE_UNINITIALIZED, recorders.made[1].state)
        val clip = SpeechWindow.centred(org.tflitefineprune.core.WavReader.fromPcm16(stream.copyOf(24000), 16000).samples, spec.input.elements)
        assertArrayEquals(clip, DemoState.meSamples.single().floats(), 0f)
        assertEquals(1, MeStore(activity.filesDir).load(spec).size)
    }

    @Test
    fun aClipOfExactZerosIsLeftOutAndTheBatchKept() {
        launch()
        switchTo("speech")
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        val clips = assets.user("speech").eval.map { it.file }
        val stream = clips.flatMap { assets.pcm(it).toList() }.toShortArray().copyOf(10 * 24000)
        stream.fill(0, 3 * 24000, 4 * 24000) // the fourth clip: the microphone switched off (all zeros)
        DemoServices.microphone = PcmMicrophone(stream)
        activity.click("Users")
        activity.click("Record 10 clips")
        settle()
        assertTrue(activity.statusLine(), activity.statusLine().startsWith("recorded 9 of 10 clips; loudest 0.1 s: "))
        assertTrue(activity.statusLine(), activity.statusLine().endsWith(
            "; 1 clip was pure silence (all zeros) and was left out: is microphone access turned off in Quick Settings?"))
        assertEquals(9, DemoState.meSamples.size)
        val spec = assets.model("speech")
        val fifth = SpeechWindow.centred(org.tflitefineprune.core.WavReader.fromPcm16(stream.copyOfRange(4 * 24000, 5 * 24000), 16000).samples, spec.input.elements)
        assertArrayEquals(fifth, DemoState.meSamples[3].floats(), 0f)
    }

    @Test
    fun theProcessEndsAndTheUserFindsTheirScreenUserAndSamples() {
        launch()
        switchTo("vision")
        val files = assets.user("vision").adapt.take(3).map { File(assets.folder, it) }
        pick(files)
        settle()
        activity.click("Use Me")
        val samples = DemoState.meSamples.map { it.bytes.toList() }
        assertEquals(3, samples.size)
        val saved = Bundle()
        controller!!.saveInstanceState(saved)
        restartProcess(saved)
        assertEquals(Screen.USERS, DemoState.screen)
        assertTrue(tab("Users").isSelected)
        assertEquals("vision", DemoState.model!!.kind)
        assertNull("Me is still the chosen user", DemoState.user)
        assertEquals(samples, DemoState.meSamples.map { it.bytes.toList() })
        activity.assertShows("Me: 3 unlabeled samples of your own")
        // Cleared samples stay cleared after the next restart.
        activity.click("Clear Me's samples")
        settle()
        restartProcess()
        assertEquals(0, DemoState.meSamples.size)
    }

    @Test
    fun photosReturnedToARecreatedProcessAreAddedOnceTheModelsLoad() {
        launch()
        switchTo("vision")
        val saved = Bundle()
        controller!!.saveInstanceState(saved)
        controller!!.pause().stop().destroy()
        DemoState.awaitWorker()
        DemoState.shutDown()
        // The new process: the picker's result arrives while the models are still loading.
        gate.close()
        controller = org.robolectric.Robolectric.buildActivity(MainActivity::class.java).setup(saved)
        val file = File(assets.folder, assets.user("vision").adapt[0])
        shadowOf(activity.contentResolver).registerInputStreamSupplier(android.net.Uri.parse("content://test.gallery/late")) { file.inputStream() }
        val data = Intent().setData(android.net.Uri.parse("content://test.gallery/late"))
        @Suppress("DEPRECATION") // the framework's result delivery, as the system does it for a recreated Activity
        shadowOf(activity).callOnActivityResult(MainActivity.PICK_PHOTOS, android.app.Activity.RESULT_OK, data)
        assertEquals("1 photo queued: it is added when loading the models ends", activity.statusLine())
        gate.open()
        settle()
        assertEquals("added 1 photo", activity.statusLine())
        assertEquals(1, DemoState.meSamples.size)
    }

    @Test
    fun theSystemPhotoPickerIsUsedAndEachPhotoIsReadOnce() {
        launch()
        switchTo("vision")
        val files = assets.user("vision").adapt.take(4).map { File(assets.folder, it) }
        val opens = IntArray(files.size)
        val picker = pick(files, opens)
        settle()
        assertEquals(android.provider.MediaStore.ACTION_PICK_IMAGES, picker.action)
        assertEquals(50, picker.getIntExtra(android.provider.MediaStore.EXTRA_PICK_IMAGES_MAX, -1))
        assertEquals("added 4 photos", activity.statusLine())
        assertEquals(listOf(1, 1, 1, 1), opens.toList())
    }

    @Test
    fun withNoPhotoPickerTheUserIsToldSo() {
        launch()
        switchTo("vision")
        @Suppress("DEPRECATION")
        shadowOf(activity.application).checkActivities(true) // no app handles a picker intent
        activity.click("Users")
        activity.click("Pick photos")
        assertEquals("No app on this phone can pick photos.", activity.statusLine())
        assertNull(shadowOf(activity).nextStartedActivityForResult)
    }

    @Test
    fun listenShowsAWordOnlyAboveItsThreshold() {
        launch()
        switchTo("speech")
        shadowOf(activity.application).grantPermissions(Manifest.permission.RECORD_AUDIO)
        val spec = assets.model("speech")
        val clip = assets.user("speech").eval[0].file
        val pcm = assets.pcm(clip)
        val window = org.tflitefineprune.core.WavReader.fit(org.tflitefineprune.core.WavReader.fromPcm16(pcm, 16000), spec.input.elements, 16000, clip)
        val p = independently("speech") { probabilities(it.scores(spec.sampleOfFloats(window))) }
        val best = p.indices.maxByOrNull { p[it] }!!
        val word = spec.layout.labels[best]
        for ((threshold, shown) in listOf(p[best] + 0.001 to "(not sure: $word ${pct(p[best])})", p[best] - 0.001 to "$word ${pct(p[best])}")) {
            DemoState.listenThreshold = threshold
            DemoState.heard = ""
            DemoServices.microphone = PcmMicrophone(pcm)
            activity.click("Listen")
            activity.assertShows("A word is shown when the average of the last 3 windows reaches ${pct(threshold)}.")
            activity.click("Start listening")
            waitFor("a word") { DemoState.heard.isNotEmpty() }
            assertEquals(shown, DemoState.heard)
            activity.click("Stop listening")
            settle()
        }
    }

    @Test
    fun theLayoutKeepsClearOfTheSystemBars() {
        launch()
        val root = (activity.findViewById<android.view.ViewGroup>(android.R.id.content)).getChildAt(0)
        val pad = root.paddingLeft
        val insets = WindowInsets.Builder().setInsets(WindowInsets.Type.systemBars(), Insets.of(0, 63, 0, 126)).build()
        root.dispatchApplyWindowInsets(insets)
        assertEquals(pad + 63, root.paddingTop)
        assertEquals(pad + 126, root.paddingBottom)
        assertEquals(pad, root.paddingLeft)
    }
}
