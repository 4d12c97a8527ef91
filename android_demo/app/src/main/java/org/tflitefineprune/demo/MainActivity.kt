package org.tflitefineprune.demo

import android.Manifest
import android.app.Activity
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.BitmapFactory
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView
import org.tflitefineprune.core.BundledUser
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationResult
import org.tflitefineprune.core.PersonalizationSession
import org.tflitefineprune.core.Tensor
import org.tflitefineprune.core.WavReader
import java.util.Locale

/**
 * The demo: Model, Users, Personalize (before / after), Profiles and Listen screens, built from plain
 * framework Views. All model work runs on a background thread; the views are rebuilt on the UI thread.
 */
class MainActivity : Activity() {
    private lateinit var assets: BundledAssets
    private lateinit var profiles: ProfileStore
    private lateinit var content: LinearLayout
    private lateinit var progress: ProgressBar
    private lateinit var status: TextView

    private var model: ModelSpec? = null
    private var runner: LiteRtRunner? = null
    private var session: PersonalizationSession? = null
    private var user: BundledUser? = null // null: "Me"
    private val meSamples = ArrayList<Tensor>()
    private var lastResult: PersonalizationResult? = null
    private var activeProfile: String? = null
    @Volatile private var listening = false
    @Volatile private var busy = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(24, 24, 24, 24) }
        val tabs = LinearLayout(this).apply { orientation = LinearLayout.HORIZONTAL }
        for ((label, screen) in listOf("Model" to ::showModel, "Users" to ::showUsers, "Personalize" to ::showPersonalize,
            "Profiles" to ::showProfiles, "Listen" to ::showListen)) {
            tabs.addView(Button(this).apply { text = label; setOnClickListener { listening = false; screen() } })
        }
        status = TextView(this)
        progress = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { visibility = View.GONE }
        content = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        root.addView(ScrollView(this).apply { addView(tabs) })
        root.addView(status)
        root.addView(progress)
        root.addView(ScrollView(this).apply { addView(content) })
        setContentView(root)
        profiles = ProfileStore(filesDir)
        try {
            assets = BundledAssets(this)
            selectModel(assets.manifest.models.first())
        } catch (e: FinePruneException) {
            status.text = e.message
            return
        }
        showModel()
    }

    override fun onDestroy() {
        listening = false
        runner?.close()
        super.onDestroy()
    }

    // -- model and profile selection --------------------------------------------------------

    private fun selectModel(spec: ModelSpec) {
        runner?.close()
        val opened = LiteRtRunner(assets.modelFile(spec))
        val missing = spec.signatures.keys - opened.signatureKeys.toSet()
        if (missing.isNotEmpty()) throw FinePruneException("${spec.file} lacks signatures $missing listed in the manifest")
        model = spec
        runner = opened
        session = PersonalizationSession(spec, opened)
        user = assets.manifest.users.firstOrNull { it.model == spec.key }
        meSamples.clear()
        lastResult = null
        // The last active profile is loaded on start.
        activeProfile = getPreferences(MODE_PRIVATE).getString("active_${spec.key}", null)?.takeIf { it in profiles.profiles(spec) }
        activeProfile?.let { applyProfile(it) }
    }

    private fun applyProfile(name: String) {
        val spec = model ?: return
        try {
            session?.setState(profiles.load(spec, name))
            activeProfile = name
            getPreferences(MODE_PRIVATE).edit().putString("active_${spec.key}", name).apply()
            status.text = "profile '$name' active"
        } catch (e: Exception) {
            status.text = "could not load profile '$name': ${e.message}"
        }
    }

    // -- screens ------------------------------------------------------------------------------

    private fun screen(title: String): LinearLayout {
        content.removeAllViews()
        content.addView(TextView(this).apply { text = title; textSize = 20f })
        return content
    }

    private fun line(parent: LinearLayout, text: String) = parent.addView(TextView(this).apply { this.text = text })

    private fun button(parent: LinearLayout, text: String, action: () -> Unit) =
        parent.addView(Button(this).apply { this.text = text; setOnClickListener { action() } })

    private fun showModel() {
        val spec = model ?: return
        val page = screen("Model")
        val layout = spec.layout
        line(page, spec.name)
        line(page, "file ${spec.file}: ${String.format(Locale.US, "%.2f", spec.fileBytes / 1e6)} MB; tflite-fineprune format ${layout.formatVersion}")
        line(page, "labels (${layout.numClasses}): ${layout.labels.joinToString()}")
        line(page, "prunable units: ${layout.numUnits} in ${layout.groups.size} layers; ${layout.totalWeights} weights, ${layout.totalMacs} MACs per sample")
        line(page, "signatures: ${spec.signatures.keys.sorted().joinToString()}")
        line(page, "input: ${spec.input.dtype.jsonName} ${spec.input.shape.contentToString()}" +
            if (spec.sampleRate > 0) ", ${spec.sampleRate} Hz" else spec.imageSize?.let { ", ${it[0]}x${it[1]} pixels" } ?: "")
        line(page, "recipe: ${spec.recipe.name}")
        for (other in assets.manifest.models) if (other !== spec) button(page, "Switch to ${other.name}") { runSafely { selectModel(other); showModel() } }
    }

    private fun showUsers() {
        val spec = model ?: return
        val page = screen("Users")
        for (u in assets.manifest.users.filter { it.model == spec.key }) {
            line(page, "${u.name}: ${u.description}; ${u.adapt.size} adaptation samples (unlabeled), ${u.eval.size} held out")
            button(page, if (u === user) "✓ ${u.name}" else "Use ${u.name}") { user = u; lastResult = null; showUsers() }
        }
        line(page, "Me: ${meSamples.size} unlabeled samples of your own (no labels, so no accuracy is shown)")
        if (spec.kind == "speech") {
            button(page, "Record a 1 s clip") { withMicrophone { recordMe() } }
        } else {
            button(page, "Pick photos from the gallery") {
                startActivityForResult(Intent(Intent.ACTION_GET_CONTENT).setType("image/*").putExtra(Intent.EXTRA_ALLOW_MULTIPLE, true), PICK_PHOTOS)
            }
        }
        button(page, if (user == null) "✓ Me" else "Use Me") { user = null; lastResult = null; showUsers() }
    }

    private fun recordMe() = background("recording") {
        val spec = model!!
        val clip = MicRecorder(spec.sampleRate).record()
        val samples = WavReader.fit(WavReader.fromPcm16(clip, spec.sampleRate), spec.input.elements, spec.sampleRate, "microphone clip")
        meSamples.add(BundledAssets.audioSample(spec, samples))
        ui { showUsers() }
    }

    @Deprecated("framework Activity API, kept for plain Views")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        if (requestCode != PICK_PHOTOS || resultCode != RESULT_OK || data == null) return
        val spec = model ?: return
        val uris = data.clipData?.let { clips -> (0 until clips.itemCount).map { clips.getItemAt(it).uri } } ?: listOfNotNull(data.data)
        background("decoding photos") {
            for (uri in uris) {
                val bitmap = contentResolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it) } ?: continue
                meSamples.add(BundledAssets.imageSample(spec, bitmap))
            }
            ui { showUsers() }
        }
    }

    private fun showPersonalize() {
        val spec = model ?: return
        val page = screen("Before / Personalize / After")
        val u = user
        line(page, if (u != null) "user ${u.name}: dense accuracy on the held-out half is measured first" else "Me: ${meSamples.size} samples")
        u?.let { line(page, "expected (Python run): dense ${pct(it.expected.denseAccuracy)} → ${pct(it.expected.accuracy)}, " +
            "${it.expected.prunedUnits} units pruned, classes excluded: ${it.expected.excludedClasses.ifEmpty { listOf("none") }.joinToString()}") }
        lastResult?.let { r ->
            if (u != null) line(page, "before: ${pct(r.denseAccuracy)}   after: ${pct(r.accuracy)}")
            line(page, "removed: ${r.sparsity.prunedUnits}/${r.sparsity.totalUnits} units (${pct(r.sparsity.units)}), " +
                "weights ${pct(r.sparsity.weights)}, MACs ${pct(r.sparsity.macs)}")
            line(page, "classes excluded: ${r.excludedClasses.ifEmpty { listOf("none") }.joinToString()}")
            r.auto?.let { a -> line(page, "recipe chosen: ${a.recipe}" + a.notes.joinToString("") { "; $it" }) }
            line(page, "observe + recipe took ${r.millis} ms on this phone")
        }
        if (u != null) button(page, "Before: evaluate the dense model") { evaluateDense(u) }
        button(page, "Personalize (${spec.recipe.name})") { personalize() }
    }

    private fun evaluateDense(u: BundledUser) = background("evaluating the dense model") {
        val spec = model!!
        val s = session!!
        s.reset()
        val accuracy = s.accuracy(u.eval.map { assets.sample(spec, it.file) }, u.eval.map { it.label }.toIntArray())
        ui {
            activeProfile?.let { applyProfile(it) } // the active profile comes back after the dense check
            showPersonalize()
            line(content, "before (dense model): ${pct(accuracy)}")
        }
    }

    private fun personalize() = background("personalizing") {
        val spec = model!!
        val s = session!!
        val u = user
        val report = PersonalizationSession.Progress { stage, done, total -> ui { status.text = "$stage $done/$total"; progress.max = total; progress.progress = done } }
        val result = if (u != null) {
            val adapt = u.adapt.map { assets.sample(spec, it) }
            val eval = u.eval.map { assets.sample(spec, it.file) }
            s.personalize(adapt, eval, u.eval.map { it.label }.toIntArray(), report)
        } else {
            if (meSamples.isEmpty()) throw FinePruneException("record clips or pick photos on the Users screen first")
            val start = System.currentTimeMillis()
            s.reset()
            s.observe(meSamples, report)
            s.applyRecipe()
            val state = s.getState()
            PersonalizationResult(Double.NaN, Double.NaN, org.tflitefineprune.core.Sparsity.measure(spec.layout, state.masks),
                spec.layout.excludedClasses(state.masks), state, System.currentTimeMillis() - start)
        }
        val name = u?.name ?: "me"
        profiles.save(spec, name, result.state)
        lastResult = result
        ui { applyProfile(name); showPersonalize() }
    }

    private fun showProfiles() {
        val spec = model ?: return
        val page = screen("Profiles")
        val names = profiles.profiles(spec)
        if (names.isEmpty()) line(page, "no profiles yet: personalize a user first")
        for (name in names) {
            line(page, if (name == activeProfile) "$name (active)" else name)
            button(page, "Use $name") { runSafely { applyProfile(name); showProfiles() } }
            button(page, "Revert $name to the dense model") {
                runSafely {
                    session!!.reset()
                    profiles.save(spec, name, session!!.getState())
                    applyProfile(name)
                    showProfiles()
                }
            }
            button(page, "Delete $name") {
                runSafely {
                    profiles.delete(spec, name)
                    if (name == activeProfile) { session!!.reset(); activeProfile = null }
                    showProfiles()
                }
            }
        }
    }

    private fun showListen() {
        val spec = model ?: return
        val page = screen("Listen")
        if (spec.kind != "speech") {
            line(page, "Listen needs the speech model; switch models on the Model screen")
            return
        }
        val word = TextView(this).apply { textSize = 32f }
        page.addView(word)
        line(page, "profile: ${activeProfile ?: "dense model"}")
        button(page, "Start / stop") {
            if (listening) { listening = false; return@button }
            withMicrophone {
                listening = true
                background("listening") {
                    val recorder = MicRecorder(spec.sampleRate)
                    while (listening) {
                        val clip = WavReader.fit(WavReader.fromPcm16(recorder.record(), spec.sampleRate), spec.input.elements, spec.sampleRate, "microphone")
                        val label = spec.layout.labels[session!!.predict(listOf(BundledAssets.audioSample(spec, clip)))[0]]
                        ui { word.text = label }
                    }
                }
            }
        }
    }

    // -- plumbing -------------------------------------------------------------------------------

    private var pendingMicrophone: (() -> Unit)? = null

    private fun withMicrophone(action: () -> Unit) {
        if (checkSelfPermission(Manifest.permission.RECORD_AUDIO) == PackageManager.PERMISSION_GRANTED) {
            action()
        } else {
            pendingMicrophone = action
            requestPermissions(arrayOf(Manifest.permission.RECORD_AUDIO), RECORD_AUDIO)
        }
    }

    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<out String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (requestCode != RECORD_AUDIO) return
        val action = pendingMicrophone
        pendingMicrophone = null
        if (grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) action?.invoke() else status.text = "the microphone permission was refused"
    }

    private fun ui(block: () -> Unit) = runOnUiThread(block)

    private fun runSafely(block: () -> Unit) = try {
        block()
    } catch (e: Exception) {
        status.text = e.message
    }

    private fun background(what: String, block: () -> Unit) {
        if (busy) { status.text = "busy, please wait"; return }
        busy = true
        status.text = what
        progress.visibility = View.VISIBLE
        Thread {
            try {
                block()
                ui { if (status.text == what) status.text = "" }
            } catch (e: Exception) {
                listening = false
                ui { status.text = "$what failed: ${e.message}" }
            } finally {
                busy = false
                ui { progress.visibility = View.GONE }
            }
        }.start()
    }

    private fun pct(value: Double) = if (value.isNaN()) "–" else String.format(Locale.US, "%.1f%%", 100 * value)

    companion object {
        private const val PICK_PHOTOS = 1
        private const val RECORD_AUDIO = 2
    }
}
