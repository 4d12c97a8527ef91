package org.tflitefineprune.demo

import android.Manifest
import android.app.Activity
import android.content.ClipData
import android.content.Context
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.TypedValue
import android.view.View
import android.widget.Button
import android.widget.HorizontalScrollView
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView
import org.tflitefineprune.core.AudioLevel
import org.tflitefineprune.core.AutoRecipe
import org.tflitefineprune.core.BundledUser
import org.tflitefineprune.core.FinePruneException
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationResult
import org.tflitefineprune.core.PersonalizationSession
import org.tflitefineprune.core.SlidingWindow
import org.tflitefineprune.core.Sparsity
import org.tflitefineprune.core.Tensor
import org.tflitefineprune.core.WavReader
import org.tflitefineprune.core.probabilities
import java.util.Locale

/**
 * The demo: Model, Users, Personalize (before / after), Profiles and Listen screens, built from plain
 * framework Views. The Activity only draws [DemoState] and starts jobs; all model work, file copies,
 * decoding and recording run on DemoState's one worker thread.
 */
class MainActivity : Activity() {
    private val state = DemoState
    private lateinit var content: LinearLayout
    private lateinit var progress: ProgressBar
    private lateinit var meter: ProgressBar
    private lateinit var status: TextView
    private var heardView: TextView? = null
    private var pendingMicrophone: (() -> Unit)? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val pad = dp(12)
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(pad, pad, pad, pad) }
        // Five tabs do not fit 360 dp as full-size buttons: compact ones in a row that scrolls sideways.
        val tabs = LinearLayout(this).apply { orientation = LinearLayout.HORIZONTAL }
        for (screen in Screen.entries) {
            tabs.addView(Button(this).apply {
                text = screen.title
                minWidth = 0
                minimumWidth = 0
                setPadding(dp(8), 0, dp(8), 0)
                setOnClickListener { show(screen) }
            })
        }
        status = TextView(this)
        progress = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { visibility = View.GONE }
        meter = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 100; visibility = View.GONE }
        content = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        root.addView(HorizontalScrollView(this).apply { addView(tabs) })
        root.addView(status)
        root.addView(progress)
        root.addView(meter)
        root.addView(ScrollView(this).apply { addView(content) })
        setContentView(root)
        state.activity = this
        state.appContext = applicationContext
        if (!state.started) {
            state.started = true
            launch()
        }
        render()
    }

    override fun onPause() {
        // The microphone is not kept while the app is in the background.
        state.stopRequested = true
        super.onPause()
    }

    override fun onDestroy() {
        if (state.activity === this) state.activity = null
        if (isFinishing && !isChangingConfigurations) state.shutDown()
        super.onDestroy()
    }

    private fun dp(value: Int) = TypedValue.applyDimension(TypedValue.COMPLEX_UNIT_DIP, value.toFloat(), resources.displayMetrics).toInt()

    private fun show(screen: Screen) {
        if (state.job == LISTENING) state.stopRequested = true
        state.screen = screen
        render()
    }

    // -- loading the model and profiles (worker) -------------------------------------------------

    private fun launch() = state.start("loading the models") {
        val context = applicationContext
        val assets = BundledAssets(DemoServices.assets(context), context.filesDir)
        val last = preferences(context).getString(LAST_MODEL, null)
        val spec = assets.manifest.models.firstOrNull { it.key == last } ?: assets.manifest.models.first()
        val opened = open(context, assets, spec, null);
        { state.assets = assets; opened() }
    }

    /** Opens [spec] on the worker, then closes [previous]; the returned block makes [spec] current. */
    private fun open(context: Context, assets: BundledAssets, spec: ModelSpec, previous: OpenedModel?): () -> Unit {
        val file = assets.modelFile(spec)
        val opened = try {
            DemoServices.openModel(file)
        } catch (e: Exception) {
            throw FinePruneException("the interpreter could not open ${spec.file}: ${e.message}")
        } catch (e: LinkageError) {
            throw FinePruneException("the interpreter could not open ${spec.file}: ${e.message}")
        }
        val missing = spec.signatures.keys - opened.signatureKeys.toSet()
        if (missing.isNotEmpty()) {
            opened.close()
            throw FinePruneException("${spec.file} lacks signatures $missing listed in the manifest")
        }
        // The model in use stays open until its replacement works (and this runs on the worker: no call is running).
        previous?.close()
        val session = PersonalizationSession(spec, opened)
        // The profile active when the app was last used comes back.
        val profiles = ProfileStore(context.filesDir)
        val saved = preferences(context).getString(activeKey(spec), null)?.takeIf { it in profiles.profiles(spec) }
        var note = ""
        val active = saved?.let {
            try {
                session.setState(profiles.load(spec, it))
                it
            } catch (e: Exception) {
                note = "could not load profile '$it': ${e.message}"
                null
            }
        }
        val firstUser = assets.manifest.users.firstOrNull { it.model == spec.key }
        return {
            state.model = spec
            state.runner = opened
            state.session = session
            state.user = firstUser
            state.meSamples = emptyList()
            state.queuedPhotos.clear()
            state.lastResult = null
            state.evaluation = null
            state.activeProfile = active
            state.showingDense = false
            state.status = note.ifEmpty { active?.let { "profile '$it' active" } ?: "" }
            preferences(context).edit().putString(LAST_MODEL, spec.key).apply()
        }
    }

    private fun preferences(context: Context) = context.getSharedPreferences("fineprune-demo", MODE_PRIVATE)

    private fun activeKey(spec: ModelSpec) = "active_${spec.key}"

    private fun remember(spec: ModelSpec, profile: String?) {
        val edit = preferences(this).edit()
        if (profile == null) edit.remove(activeKey(spec)) else edit.putString(activeKey(spec), profile)
        edit.apply()
    }

    private fun profiles() = ProfileStore(filesDir)

    // -- drawing ------------------------------------------------------------------------------------

    fun renderStatus() {
        status.text = state.status
        progress.visibility = if (state.job != null) View.VISIBLE else View.GONE
        progress.isIndeterminate = state.progressTotal == 0
        if (state.progressTotal > 0) { progress.max = state.progressTotal; progress.progress = state.progressDone }
        meter.visibility = if (state.level >= 0) View.VISIBLE else View.GONE
        meter.progress = maxOf(state.level, 0)
    }

    fun renderHeard() {
        heardView?.text = state.heard
    }

    fun render() {
        renderStatus()
        content.removeAllViews()
        heardView = null
        if (state.model == null) {
            if (state.job == null) line("no model is loaded: see the message above")
            return
        }
        when (state.screen) {
            Screen.MODEL -> showModel()
            Screen.USERS -> showUsers()
            Screen.PERSONALIZE -> showPersonalize()
            Screen.PROFILES -> showProfiles()
            Screen.LISTEN -> showListen()
        }
    }

    private fun title(text: String) = content.addView(TextView(this).apply { this.text = text; textSize = 20f })

    private fun line(text: String) = content.addView(TextView(this).apply { this.text = text })

    private fun button(text: String, action: () -> Unit) =
        content.addView(Button(this).apply { this.text = text; setOnClickListener { action() } })

    private fun showModel() {
        val spec = state.model!!
        val layout = spec.layout
        title("Model")
        line(spec.name)
        line("file ${spec.file}: ${String.format(Locale.US, "%.2f", spec.fileBytes / 1e6)} MB; tflite-fineprune format ${layout.formatVersion}")
        line("labels (${layout.numClasses}): ${layout.labels.joinToString()}")
        line("prunable units: ${layout.numUnits} in ${layout.groups.size} layers; ${layout.totalWeights} weights, ${layout.totalMacs} MACs per sample")
        line("signatures: ${spec.signatures.keys.sorted().joinToString()}")
        line("input: ${spec.input.dtype.jsonName} ${spec.input.shape.contentToString()}" +
            if (spec.sampleRate > 0) ", ${spec.sampleRate} Hz" else spec.imageSize?.let { ", ${it[0]}x${it[1]} pixels" } ?: "")
        line("recipe: ${spec.recipe.name}")
        val assets = state.assets ?: return
        for (other in assets.manifest.models) if (other !== spec) {
            button("Switch to ${other.name}") {
                val previous = state.runner
                state.start("switching to ${other.name}") { open(applicationContext, assets, other, previous) }
            }
        }
    }

    private fun showUsers() {
        val spec = state.model!!
        title("Users")
        for (u in state.assets!!.manifest.users.filter { it.model == spec.key }) {
            line("${u.name}: ${u.description}; ${u.adapt.size} adaptation samples (unlabeled), ${u.eval.size} held out")
            button(if (u === state.user) "✓ ${u.name}" else "Use ${u.name}") { choose(u) }
        }
        line("Me: ${state.meSamples.size} unlabeled samples of your own (no labels, so no accuracy is shown)")
        if (spec.kind == "speech") {
            for (n in listOf(1, 10)) button(if (n == 1) "Record 1 clip" else "Record $n clips") { withMicrophone { recordClips(n) } }
        } else {
            button("Pick photos from the gallery") {
                @Suppress("DEPRECATION")
                startActivityForResult(Intent(Intent.ACTION_GET_CONTENT).setType("image/*").putExtra(Intent.EXTRA_ALLOW_MULTIPLE, true), PICK_PHOTOS)
            }
        }
        if (state.meSamples.isNotEmpty()) button("Clear Me's samples") { state.meSamples = emptyList(); render() }
        button(if (state.user == null) "✓ Me" else "Use Me") { choose(null) }
    }

    private fun choose(u: BundledUser?) {
        state.user = u
        state.lastResult = null
        state.evaluation = null
        render()
    }

    /** A batch of one-second clips from one open microphone, after a countdown, with a level meter. */
    private fun recordClips(count: Int) {
        val spec = state.model ?: return
        state.start("recording $count clips") {
            val rate = spec.sampleRate
            val clips = ArrayList<Tensor>()
            var peak = 0.0
            DemoServices.microphone.open(rate).use { mic ->
                for (second in DemoServices.countdownSeconds downTo 1) {
                    if (state.stopRequested) break
                    DemoState.report("recording in $second…")
                    Thread.sleep(1000)
                }
                for (i in 1..count) {
                    if (state.stopRequested) break
                    DemoState.report("say a word: clip $i of $count", i - 1, count)
                    val pcm = mic.readFully(rate, rate / 10) { buffer, offset, n ->
                        val rms = AudioLevel.rms(WavReader.fromPcm16(buffer.copyOfRange(offset, offset + n), rate).samples)
                        peak = maxOf(peak, rms)
                        DemoState.reportLevel(AudioLevel.meter(rms))
                    }
                    val samples = WavReader.fit(WavReader.fromPcm16(pcm, rate), spec.input.elements, rate, "microphone clip $i")
                    clips.add(BundledAssets.audioSample(spec, samples))
                }
            };
            {
                state.meSamples = state.meSamples + clips
                state.status = "recorded ${clips.size} of $count clips" + (if (clips.size < count) " (stopped)" else "") +
                    String.format(Locale.US, "; loudest 0.1 s: %.0f dBFS", AudioLevel.dbfs(peak)) +
                    if (AudioLevel.dbfs(peak) < AudioLevel.SILENCE_DBFS) " (too quiet: is the microphone covered?)" else ""
            }
        }
    }

    @Deprecated("framework Activity API, kept for plain Views")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        @Suppress("DEPRECATION")
        super.onActivityResult(requestCode, resultCode, data)
        if (requestCode != PICK_PHOTOS || resultCode != RESULT_OK || data == null) return
        val uris = data.clipData?.let { clips -> (0 until clips.itemCount).map { clips.getItemAt(it).uri } } ?: listOfNotNull(data.data)
        state.queuedPhotos.addAll(uris)
        if (state.job != null) {
            state.status = "${state.queuedPhotos.size} photos queued: they are added when ${state.job} ends"
            renderStatus()
        } else {
            startQueuedWork()
        }
    }

    /** Photos picked while a job ran are decoded once it ends. */
    fun startQueuedWork() {
        val spec = state.model ?: return
        if (state.job != null || state.queuedPhotos.isEmpty() || spec.imageSize == null) return
        val uris = state.queuedPhotos.toList()
        state.queuedPhotos.clear()
        val size = spec.imageSize!!
        state.start("decoding ${uris.size} photos") {
            val added = ArrayList<Tensor>()
            val failed = ArrayList<String>()
            for ((i, uri) in uris.withIndex()) {
                DemoState.report("decoding photo ${i + 1} of ${uris.size}", i, uris.size)
                try {
                    added.add(BundledAssets.imageSample(spec, PhotoDecoder.decode(contentResolver, uri, size[1], size[0])))
                } catch (e: Exception) {
                    failed.add("${uri.lastPathSegment}: ${e.message}")
                } catch (e: OutOfMemoryError) {
                    failed.add("${uri.lastPathSegment}: out of memory")
                }
            };
            {
                state.meSamples = state.meSamples + added
                state.status = "added ${added.size} photos" + if (failed.isEmpty()) "" else "; not added: ${failed.joinToString("; ")}"
            }
        }
    }

    private fun showPersonalize() {
        val spec = state.model!!
        val u = state.user
        title("Before / Personalize / After")
        line(if (u != null) "user ${u.name}: ${u.adapt.size} unlabeled samples to adapt, ${u.eval.size} labeled to score"
            else "Me: ${state.meSamples.size} samples")
        u?.let {
            line("expected (Python run): dense ${pct(it.expected.denseAccuracy)} → ${pct(it.expected.accuracy)}, " +
                "${it.expected.prunedUnits} units pruned, classes excluded: ${it.expected.excludedClasses.ifEmpty { listOf("none") }.joinToString()}")
        }
        state.lastResult?.let { r ->
            if (!r.denseAccuracy.isNaN()) line("before: ${pct(r.denseAccuracy)}   after: ${pct(r.accuracy)}")
            line("removed: ${r.sparsity.prunedUnits}/${r.sparsity.totalUnits} units (${pct(r.sparsity.units)}), " +
                "weights ${pct(r.sparsity.weights)}, MACs ${pct(r.sparsity.macs)}")
            line("classes excluded: ${r.excludedClasses.ifEmpty { listOf("none") }.joinToString()}")
            r.auto?.let { a -> line("recipe chosen: ${a.recipe}" + a.notes.joinToString("") { "; $it" }) }
            line("observe + recipe took ${r.millis} ms on this phone")
        }
        state.evaluation?.let { line(it) }
        val active = state.activeProfile
        if (active != null) {
            line("model shown: " + if (state.showingDense) "dense (profile '$active' kept)" else "personalized ('$active')")
            button(if (state.showingDense) "Show personalized" else "Show dense") { switchDense(!state.showingDense) }
        }
        if (u != null) button("Evaluate the model shown on ${u.eval.size} held-out samples") { evaluate(u) }
        button("Personalize (${spec.recipe.name})") { personalize() }
    }

    /** The non-destructive switch: the dense model or the active profile, on the same inputs. */
    private fun switchDense(dense: Boolean) {
        val spec = state.model!!
        val s = state.session!!
        val name = state.activeProfile ?: return
        state.start(if (dense) "showing the dense model" else "showing profile '$name'") {
            if (dense) s.reset() else s.setState(profiles().load(spec, name))
            ({ state.showingDense = dense; state.evaluation = null })
        }
    }

    private fun evaluate(u: BundledUser) {
        val spec = state.model!!
        val s = state.session!!
        val assets = state.assets!!
        val shown = when {
            state.activeProfile == null -> "dense"
            state.showingDense -> "dense"
            else -> "personalized ('${state.activeProfile}')"
        }
        state.start("evaluating") {
            val progress = PersonalizationSession.Progress { stage, done, total -> DemoState.report("$stage $done/$total", done, total) }
            val accuracy = s.accuracy(u.eval.map { assets.sample(spec, it.file) }, u.eval.map { it.label }.toIntArray(), progress);
            { state.evaluation = "$shown model on ${u.name}'s held-out samples: ${pct(accuracy)}" }
        }
    }

    private fun personalize() {
        val spec = state.model!!
        val s = state.session!!
        val assets = state.assets!!
        val u = state.user
        val me = state.meSamples
        if (u == null && me.isEmpty()) {
            state.status = "record clips or pick photos on the Users screen first"
            renderStatus()
            return
        }
        val store = profiles()
        val active = state.activeProfile
        state.start("personalizing") {
            val progress = PersonalizationSession.Progress { stage, done, total -> DemoState.report("$stage $done/$total", done, total) }
            val result = if (u != null) {
                s.personalize(u.adapt.map { assets.sample(spec, it) }, u.eval.map { assets.sample(spec, it.file) },
                    u.eval.map { it.label }.toIntArray(), progress)
            } else {
                personalizeMe(s, me, progress)
            }
            // A recipe that changed nothing leaves the model dense: nothing worth keeping as a profile.
            val changed = result.auto?.steps?.isNotEmpty() ?: true
            val stored = if (changed) store.save(spec, u?.name ?: "me", result.state) else null
            if (!changed) active?.let { s.setState(store.load(spec, it)) };
            {
                state.lastResult = result
                state.evaluation = null
                if (stored != null) {
                    state.activeProfile = stored
                    state.showingDense = false
                    remember(spec, stored)
                    state.status = "profile '$stored' saved and active"
                } else {
                    state.status = "the recipe changed nothing; no profile saved"
                }
            }
        }
    }

    /** Me has no labels: the automatic recipe decides from the unlabeled samples alone (or the fixed steps). */
    private fun personalizeMe(s: PersonalizationSession, samples: List<Tensor>, progress: PersonalizationSession.Progress): PersonalizationResult {
        val spec = s.model
        val start = System.currentTimeMillis()
        val rule = spec.recipe.auto
        val report = if (rule != null) AutoRecipe.personalize(s, samples, rule, progress) else {
            s.reset()
            s.observe(samples, progress)
            s.applyRecipe()
            null
        }
        val state = s.getState()
        return PersonalizationResult(Double.NaN, Double.NaN, Sparsity.measure(spec.layout, state.masks),
            spec.layout.excludedClasses(state.masks), state, System.currentTimeMillis() - start, report)
    }

    private fun showProfiles() {
        val spec = state.model!!
        val s = state.session!!
        val store = profiles()
        title("Profiles")
        val names = store.profiles(spec)
        if (names.isEmpty()) line("no profiles yet: personalize a user first")
        if (state.activeProfile == null) line("the dense model is in use")
        for (name in names) {
            line(if (name == state.activeProfile) "$name (active)" else name)
            button("Use $name") {
                state.start("loading profile '$name'") {
                    s.setState(store.load(spec, name))
                    ({ state.activeProfile = name; state.showingDense = false; remember(spec, name); state.status = "profile '$name' active" })
                }
            }
            if (name == state.activeProfile) {
                button("Revert to the dense model (keeps $name)") {
                    state.start("reverting to the dense model") {
                        s.reset()
                        ({ state.activeProfile = null; state.showingDense = false; remember(spec, null); state.status = "the dense model is in use" })
                    }
                }
            }
            button("Share $name") { share(spec, name) }
            button("Delete $name") {
                val wasActive = name == state.activeProfile
                state.start("deleting profile '$name'") {
                    store.delete(spec, name)
                    if (wasActive) s.reset()
                    ({
                        if (wasActive) { state.activeProfile = null; state.showingDense = false; remember(spec, null) }
                        state.status = "profile '$name' deleted"
                    })
                }
            }
        }
    }

    /** Hands the profile's state file to another app (mail, chat, files) through the share sheet. */
    private fun share(spec: ModelSpec, name: String) {
        val uri = ProfileProvider.uri(spec.key, name)
        val send = Intent(Intent.ACTION_SEND)
            .setType(ProfileProvider.MIME_TYPE)
            .putExtra(Intent.EXTRA_STREAM, uri)
            .putExtra(Intent.EXTRA_SUBJECT, "tflite-fineprune profile $name (${spec.name})")
            .putExtra(Intent.EXTRA_TEXT, "Personalization state for ${spec.name}: load it with tflite_fineprune's load_state.")
            .addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
        send.clipData = ClipData.newRawUri(name, uri)
        startActivity(Intent.createChooser(send, "Share profile $name"))
    }

    private fun showListen() {
        val spec = state.model!!
        title("Listen")
        if (spec.kind != "speech") {
            line("Listen needs the speech model; switch models on the Model screen")
            return
        }
        heardView = TextView(this).apply { textSize = 32f; text = state.heard }
        content.addView(heardView)
        line("model: " + (state.activeProfile?.let { if (state.showingDense) "dense (profile '$it' kept)" else "profile '$it'" } ?: "dense"))
        button(if (state.job == LISTENING) "Stop" else "Start") {
            if (state.job == LISTENING) state.stopRequested = true else withMicrophone { listen() }
        }
    }

    /**
     * One open microphone; a one-second window every half second (overlapping, so a word across a window
     * edge is heard whole); quiet windows are not classified; the word and its probability are shown.
     */
    private fun listen() {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(LISTENING) {
            val rate = spec.sampleRate
            val windows = SlidingWindow(spec.input.elements, spec.input.elements / 2)
            DemoServices.microphone.open(rate).use { mic ->
                val chunk = ShortArray(rate / 10)
                while (!state.stopRequested) {
                    val n = mic.read(chunk, 0, chunk.size)
                    val samples = WavReader.fromPcm16(chunk.copyOf(n), rate).samples
                    DemoState.reportLevel(AudioLevel.meter(AudioLevel.rms(samples)))
                    for (window in windows.push(samples)) {
                        if (AudioLevel.dbfs(AudioLevel.rms(window)) < AudioLevel.SILENCE_DBFS) {
                            DemoState.reportHeard("(quiet)")
                            continue
                        }
                        val p = probabilities(s.scores(BundledAssets.audioSample(spec, window)))
                        val best = p.indices.maxByOrNull { p[it] }!!
                        DemoState.reportHeard("${spec.layout.labels.getOrElse(best) { best.toString() }} ${pct(p[best])}")
                    }
                }
            };
            { state.status = "listening stopped" }
        }
        render()
    }

    // -- plumbing -------------------------------------------------------------------------------

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
        if (grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) {
            action?.invoke()
        } else {
            state.status = "the microphone permission was refused"
            renderStatus()
        }
    }

    private fun pct(value: Double) = if (value.isNaN()) "–" else String.format(Locale.US, "%.1f%%", 100 * value)

    companion object {
        private const val PICK_PHOTOS = 1
        private const val RECORD_AUDIO = 2
        const val LISTENING = "listening"
        private const val LAST_MODEL = "model"
    }
}
