package org.tflitefineprune.demo

import android.Manifest
import android.app.Activity
import android.app.AlertDialog
import android.content.ActivityNotFoundException
import android.content.ClipData
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Typeface
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.MediaStore
import android.provider.Settings
import android.util.TypedValue
import android.view.View
import android.view.WindowInsets
import android.widget.Button
import android.widget.HorizontalScrollView
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView
import org.tflitefineprune.core.BundledUser
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.Sparsity

/**
 * The demo: Start, Users (with Me), Personalize (before / after, or Me's consent), Profiles and Listen screens,
 * built from plain framework Views. The Activity only draws [DemoState] and starts [Jobs]; all model work, file
 * copies, decoding and recording run on DemoState's one worker thread.
 */
class MainActivity : Activity() {
    private val state = DemoState
    private lateinit var root: LinearLayout
    private lateinit var tabs: LinearLayout
    private lateinit var content: LinearLayout
    private lateinit var scroll: ScrollView
    private lateinit var progress: ProgressBar
    private lateinit var meter: ProgressBar
    private lateinit var status: TextView
    private var heardView: TextView? = null
    /** The microphone action waiting for the permission dialog ([MIC_RECORD_ONE] …); kept in the saved state. */
    private var pendingMicrophone: String? = null
    private var renderedScreen: Screen? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val pad = dp(12)
        root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(pad, pad, pad, pad) }
        // targetSdk 35 draws edge to edge: the system bars and a display cutout are kept clear by padding.
        root.setOnApplyWindowInsetsListener { view, insets ->
            val (left, top, right, bottom) = if (Build.VERSION.SDK_INT >= 30) {
                insets.getInsets(WindowInsets.Type.systemBars() or WindowInsets.Type.displayCutout()).let { listOf(it.left, it.top, it.right, it.bottom) }
            } else {
                @Suppress("DEPRECATION")
                listOf(insets.systemWindowInsetLeft, insets.systemWindowInsetTop, insets.systemWindowInsetRight, insets.systemWindowInsetBottom)
            }
            view.setPadding(pad + left, pad + top, pad + right, pad + bottom)
            insets
        }
        // Five tabs do not fit 360 dp as full-size buttons: compact ones in a row that scrolls sideways.
        tabs = LinearLayout(this).apply { orientation = LinearLayout.HORIZONTAL }
        for (screen in Screen.entries) {
            tabs.addView(Button(this).apply {
                text = getString(tabTitle(screen))
                minWidth = dp(48)
                minimumWidth = dp(48)
                minHeight = dp(48)
                minimumHeight = dp(48)
                setPadding(dp(8), 0, dp(8), 0)
                setOnClickListener { show(screen) }
            })
        }
        status = TextView(this).apply { accessibilityLiveRegion = View.ACCESSIBILITY_LIVE_REGION_POLITE }
        progress = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { visibility = View.GONE }
        meter = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 100; visibility = View.GONE }
        content = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        scroll = ScrollView(this).apply { addView(content) }
        root.addView(HorizontalScrollView(this).apply { addView(tabs) })
        root.addView(status)
        root.addView(progress)
        root.addView(meter)
        root.addView(scroll)
        setContentView(root)
        pendingMicrophone = savedInstanceState?.getString(KEY_PENDING_MICROPHONE)
        state.activity = this
        state.appContext = applicationContext
        if (!state.started) {
            // A new process: after the system ended the last one, the saved state says where the user was.
            savedInstanceState?.getString(KEY_SCREEN)?.let { name -> Screen.entries.firstOrNull { it.name == name }?.let { state.screen = it } }
            state.restoreUser = savedInstanceState?.getString(KEY_USER)
            state.started = true
            Jobs.launch(applicationContext)
        }
        render()
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putString(KEY_SCREEN, state.screen.name)
        outState.putString(KEY_USER, if (state.model == null) state.restoreUser else state.user?.name ?: Jobs.ME)
        pendingMicrophone?.let { outState.putString(KEY_PENDING_MICROPHONE, it) }
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

    private fun tabTitle(screen: Screen) = when (screen) {
        Screen.START -> R.string.tab_start
        Screen.USERS -> R.string.tab_users
        Screen.PERSONALIZE -> R.string.tab_personalize
        Screen.PROFILES -> R.string.tab_profiles
        Screen.LISTEN -> R.string.tab_listen
    }

    private fun show(screen: Screen) {
        if (state.listening) state.stopRequested = true
        state.screen = screen
        render()
    }

    // -- drawing ------------------------------------------------------------------------------------

    fun renderStatus() {
        status.text = state.status
        progress.visibility = if (state.job != null) View.VISIBLE else View.GONE
        progress.isIndeterminate = state.progressTotal == 0
        if (state.progressTotal > 0) { progress.max = state.progressTotal; progress.progress = state.progressDone }
        meter.visibility = if (state.level >= 0) View.VISIBLE else View.GONE
        meter.progress = maxOf(state.level, 0)
        meter.contentDescription = getString(R.string.meter_description, maxOf(state.level, 0))
    }

    fun renderHeard() {
        heardView?.text = state.heard
    }

    /** Redraws the screen; the scroll position is kept while the same screen is redrawn. */
    fun render() {
        renderStatus()
        for (i in 0 until tabs.childCount) {
            val tab = tabs.getChildAt(i) as Button
            val selected = Screen.entries[i] == state.screen
            tab.isSelected = selected
            tab.setTypeface(null, if (selected) Typeface.BOLD else Typeface.NORMAL)
            tab.alpha = if (selected) 1f else 0.6f
        }
        val keep = if (renderedScreen == state.screen) scroll.scrollY else 0
        renderedScreen = state.screen
        content.removeAllViews()
        heardView = null
        if (state.model == null) {
            if (state.job == null) line(getString(R.string.no_model))
            return
        }
        when (state.screen) {
            Screen.START -> showStart()
            Screen.USERS -> showUsers()
            Screen.PERSONALIZE -> showPersonalize()
            Screen.PROFILES -> showProfiles()
            Screen.LISTEN -> showListen()
        }
        scroll.post { scroll.scrollTo(0, keep) }
    }

    private fun title(text: String) = content.addView(TextView(this).apply {
        this.text = text
        textSize = 20f
        isFocusable = true
        if (Build.VERSION.SDK_INT >= 28) isAccessibilityHeading = true
    })

    private fun line(text: String) = content.addView(TextView(this).apply { this.text = text })

    private fun button(text: String, action: () -> Unit) = content.addView(Button(this).apply {
        this.text = text
        minHeight = dp(48)
        minimumHeight = dp(48)
        setOnClickListener { action() }
    })

    private fun showStart() {
        val spec = state.model!!
        val assets = state.assets ?: return
        title(getString(R.string.start_title))
        line(getString(R.string.start_intro))
        assets.manifest.users.firstOrNull { it.model == spec.key }?.let { u ->
            button(getString(R.string.start_try_user, u.name)) { choose(u); show(Screen.PERSONALIZE) }
        }
        button(getString(R.string.start_for_me)) { choose(null); show(Screen.USERS) }
        title(getString(R.string.model_details))
        val layout = spec.layout
        line(spec.name)
        line(getString(R.string.model_file, spec.file, spec.fileBytes / 1e6, layout.formatVersion))
        line(plural(R.plurals.model_labels, layout.numClasses, layout.numClasses, list(layout.labels)))
        line(getString(R.string.model_units, layout.numUnits, count(R.plurals.count_layers, layout.groups.size),
            count(R.plurals.count_weights, layout.totalWeights), count(R.plurals.count_macs, layout.totalMacs)))
        line(getString(R.string.model_signatures, list(spec.signatures.keys.sorted())))
        val dtype = spec.input.dtype.jsonName
        val shape = spec.input.shape.contentToString()
        val image = spec.imageSize
        line(when {
            spec.sampleRate > 0 -> getString(R.string.model_input_audio, dtype, shape, spec.sampleRate)
            image != null -> getString(R.string.model_input_image, dtype, shape, image[0], image[1])
            else -> getString(R.string.model_input, dtype, shape)
        })
        line(getString(R.string.model_recipe, spec.recipe.name))
        for (other in assets.manifest.models) if (other !== spec) {
            button(getString(R.string.switch_model, other.name)) { Jobs.switchModel(applicationContext, assets, other) }
        }
    }

    private fun plural(id: Int, quantity: Number, vararg args: Any): String =
        resources.getQuantityString(id, quantity.toLong().coerceIn(0, Int.MAX_VALUE.toLong()).toInt(), *args)

    /** "3 layers", "1 weight": a count with its noun (plurals whose one argument is the count). */
    private fun count(id: Int, n: Number) = plural(id, n, n)

    private fun list(items: Collection<String>) = items.joinToString(getString(R.string.list_separator))

    private fun excludedText(classes: List<String>) = if (classes.isEmpty()) getString(R.string.none) else list(classes)

    private fun notes(notes: List<String>) = notes.joinToString("") { getString(R.string.notes_separator) + it }

    private fun removed(s: Sparsity) = plural(R.plurals.removed, s.totalUnits, s.prunedUnits, s.totalUnits, Jobs.pct(s.units),
        Jobs.pct(s.weights), Jobs.pct(s.macs))

    private fun showUsers() {
        val spec = state.model!!
        title(getString(R.string.users_title))
        for (u in state.assets!!.manifest.users.filter { it.model == spec.key }) {
            line(getString(R.string.user_line, u.name, u.description, count(R.plurals.count_adaptation_samples, u.adapt.size), u.eval.size))
            button(if (u === state.user) getString(R.string.chosen, u.name) else getString(R.string.use_named, u.name)) { choose(u) }
        }
        title(getString(R.string.me_title))
        if (spec.kind == "speech") {
            line(getString(R.string.me_vocabulary, list(Jobs.vocabulary(spec))))
        } else {
            line(getString(R.string.me_classes, list(spec.layout.labels)))
        }
        line(resources.getQuantityString(R.plurals.me_samples, state.meSamples.size, state.meSamples.size))
        if (spec.kind == "speech") {
            val words = Jobs.vocabulary(spec)
            button(getString(R.string.record_one, words[state.meSamples.size % words.size])) { withMicrophone(MIC_RECORD_ONE) }
            button(getString(R.string.record_batch, BATCH)) { withMicrophone(MIC_RECORD_BATCH) }
            microphoneBlockedNotice()
        } else {
            button(getString(R.string.pick_photos)) { pickPhotos() }
        }
        if (state.meSamples.isNotEmpty()) button(getString(R.string.clear_me)) { Jobs.clearMe(applicationContext, spec) }
        button(if (state.user == null) getString(R.string.chosen, getString(R.string.me_title)) else getString(R.string.use_me)) { choose(null) }
    }

    private fun microphoneBlockedNotice() {
        if (!state.microphoneBlocked) return
        line(getString(R.string.microphone_blocked))
        button(getString(R.string.open_settings)) {
            startActivity(Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", packageName, null)))
        }
    }

    private fun choose(u: BundledUser?) {
        state.user = u
        state.lastResult = null
        state.evaluation = null
        render()
    }

    /** The system photo picker on Android 13+, the document picker before (or where the picker is missing). */
    private fun pickPhotos() {
        val documents = Intent(Intent.ACTION_OPEN_DOCUMENT).addCategory(Intent.CATEGORY_OPENABLE).setType("image/*")
            .putExtra(Intent.EXTRA_ALLOW_MULTIPLE, true)
        val intents = if (Build.VERSION.SDK_INT >= 33) {
            listOf(Intent(MediaStore.ACTION_PICK_IMAGES).putExtra(MediaStore.EXTRA_PICK_IMAGES_MAX, minOf(MAX_PHOTOS, MediaStore.getPickImagesMaxLimit())), documents)
        } else {
            listOf(documents)
        }
        for (intent in intents) {
            try {
                @Suppress("DEPRECATION") // the framework Activity's API: AndroidX's result API is not available here
                startActivityForResult(intent, PICK_PHOTOS)
                return
            } catch (_: ActivityNotFoundException) {
                // the next picker
            }
        }
        state.status = getString(R.string.no_photo_picker)
        renderStatus()
    }

    @Deprecated("framework Activity API, kept for plain Views")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        @Suppress("DEPRECATION")
        super.onActivityResult(requestCode, resultCode, data)
        if (requestCode != PICK_PHOTOS || resultCode != RESULT_OK || data == null) return
        val uris = data.clipData?.let { clips -> (0 until clips.itemCount).map { clips.getItemAt(it).uri } } ?: listOfNotNull(data.data)
        state.queuedPhotos.addAll(uris)
        val running = state.job
        if (running != null) {
            // Also after the process was recreated: the photos wait for the models to load, then are added.
            state.status = resources.getQuantityString(R.plurals.photos_queued, state.queuedPhotos.size, state.queuedPhotos.size, running)
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
        Jobs.decodePhotos(applicationContext, spec, uris)
    }

    private fun showPersonalize() {
        val spec = state.model!!
        val u = state.user
        title(getString(R.string.personalize_title))
        line(if (u != null) getString(R.string.user_samples, u.name, count(R.plurals.count_unlabeled_samples, u.adapt.size),
                count(R.plurals.count_labeled_samples, u.eval.size))
            else resources.getQuantityString(R.plurals.me_samples, state.meSamples.size, state.meSamples.size))
        u?.let {
            line(getString(R.string.expected, Jobs.pct(it.expected.denseAccuracy), Jobs.pct(it.expected.accuracy),
                count(R.plurals.count_units, it.expected.prunedUnits), excludedText(it.expected.excludedClasses)))
        }
        val consent = state.consent
        if (u == null && consent != null) {
            showConsent(consent)
            return
        }
        state.lastResult?.let { r ->
            if (!r.denseAccuracy.isNaN()) line(getString(R.string.before_after, Jobs.pct(r.denseAccuracy), Jobs.pct(r.accuracy)))
            line(removed(r.sparsity))
            line(getString(R.string.classes_excluded, excludedText(r.excludedClasses)))
            r.auto?.let { a -> line(getString(R.string.recipe_chosen, a.recipe) + notes(a.notes)) }
            line(getString(R.string.took, r.millis))
        }
        state.evaluation?.let { line(it) }
        line(getString(R.string.model_shown, Jobs.heldLabel(this, state.held)))
        val active = state.activeProfile
        if (active != null) {
            button(getString(if (state.showingDense) R.string.show_personalized else R.string.show_dense)) {
                Jobs.showDense(applicationContext, !state.showingDense)
            }
        }
        val assets = state.assets!!
        if (u != null) button(getString(R.string.evaluate, u.eval.size)) { Jobs.evaluate(applicationContext, assets, u) }
        if (u != null) {
            button(getString(R.string.personalize_for, u.name)) { Jobs.personalizeUser(applicationContext, assets, u) }
        } else {
            button(getString(R.string.personalize_for_me)) {
                if (state.meSamples.isEmpty()) {
                    state.status = getString(if (spec.kind == "speech") R.string.me_needs_clips else R.string.me_needs_photos)
                    renderStatus()
                } else {
                    Jobs.personalizeMe(applicationContext, state.meSamples)
                }
            }
        }
    }

    /** What personalizing Me found, and the question: nothing is switched on without a yes. */
    private fun showConsent(consent: Consent) {
        title(getString(R.string.consent_title))
        line(getString(R.string.consent_predicted, list(consent.predicted.map { (name, n) -> getString(R.string.class_count, name, n) })))
        line(if (consent.excluded.isEmpty()) getString(R.string.consent_excludes_none)
            else plural(R.plurals.consent_excludes, consent.excluded.size, consent.excluded.size, list(consent.excluded)))
        line(consent.inDomainShare?.let { getString(R.string.consent_in_domain, Jobs.pct(it)) } ?: getString(R.string.consent_in_domain_unknown))
        line(getString(R.string.model_recipe, consent.recipe) + notes(consent.notes))
        line(removed(consent.result.sparsity))
        line(getString(R.string.model_shown, Jobs.heldLabel(this, state.held)))
        if (state.meSamples.size != consent.samples) {
            line(plural(R.plurals.consent_stale, consent.samples, consent.samples, state.meSamples.size))
        }
        if (consent.changes) {
            line(getString(R.string.consent_question))
            button(getString(R.string.consent_apply)) { Jobs.applyConsent(applicationContext, consent) }
            button(getString(R.string.consent_discard)) { Jobs.dismissConsent(applicationContext, R.string.status_discarded) }
        } else {
            line(getString(R.string.consent_nothing))
            button(getString(R.string.ok)) { Jobs.dismissConsent(applicationContext, null) }
        }
    }

    private fun showProfiles() {
        title(getString(R.string.tab_profiles))
        val names = state.profileNames
        if (names.isEmpty()) line(getString(R.string.no_profiles))
        line(getString(R.string.model_shown, Jobs.heldLabel(this, state.held)))
        for (name in names) {
            line(if (name == state.activeProfile) getString(R.string.profile_active, name) else name)
            button(getString(R.string.use_named, name)) { Jobs.useProfile(applicationContext, name) }
            if (name == state.activeProfile) button(getString(R.string.revert, name)) { Jobs.revert(applicationContext) }
            button(getString(R.string.share, name)) { share(state.model!!, name) }
            button(getString(R.string.delete, name)) {
                AlertDialog.Builder(this)
                    .setMessage(getString(R.string.delete_question, name))
                    .setPositiveButton(R.string.delete_confirm) { _, _ -> Jobs.delete(applicationContext, name) }
                    .setNegativeButton(android.R.string.cancel, null)
                    .show()
            }
        }
    }

    /** Hands the profile's state file to another app (mail, chat, files) through the share sheet. */
    private fun share(spec: ModelSpec, name: String) {
        val uri = ProfileProvider.uri(spec.key, name)
        val send = Intent(Intent.ACTION_SEND)
            .setType(ProfileProvider.MIME_TYPE)
            .putExtra(Intent.EXTRA_STREAM, uri)
            .putExtra(Intent.EXTRA_SUBJECT, getString(R.string.share_subject, name, spec.name))
            .putExtra(Intent.EXTRA_TEXT, getString(R.string.share_text, spec.name))
            .addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
        send.clipData = ClipData.newRawUri(name, uri)
        startActivity(Intent.createChooser(send, getString(R.string.share, name)))
    }

    private fun showListen() {
        val spec = state.model!!
        title(getString(R.string.tab_listen))
        if (spec.kind != "speech") {
            line(getString(R.string.listen_needs_speech))
            return
        }
        line(getString(R.string.listen_how, Jobs.LISTEN_SMOOTHING, Jobs.pct(state.listenThreshold)))
        heardView = TextView(this).apply {
            textSize = 32f
            text = state.heard
            accessibilityLiveRegion = View.ACCESSIBILITY_LIVE_REGION_POLITE
        }
        content.addView(heardView)
        line(getString(R.string.model_shown, Jobs.heldLabel(this, state.held)))
        button(getString(if (state.listening) R.string.stop else R.string.start)) {
            if (state.listening) state.stopRequested = true else withMicrophone(MIC_LISTEN)
        }
        microphoneBlockedNotice()
    }

    // -- the microphone permission ------------------------------------------------------------------

    private fun withMicrophone(action: String) {
        if (checkSelfPermission(Manifest.permission.RECORD_AUDIO) == PackageManager.PERMISSION_GRANTED) {
            state.microphoneBlocked = false
            runMicrophone(action)
            return
        }
        pendingMicrophone = action
        if (shouldShowRequestPermissionRationale(Manifest.permission.RECORD_AUDIO)) {
            AlertDialog.Builder(this)
                .setTitle(R.string.microphone_rationale_title)
                .setMessage(R.string.microphone_rationale)
                .setPositiveButton(R.string.microphone_continue) { _, _ -> requestPermissions(arrayOf(Manifest.permission.RECORD_AUDIO), RECORD_AUDIO) }
                .setNegativeButton(R.string.not_now) { _, _ -> pendingMicrophone = null }
                .show()
        } else {
            requestPermissions(arrayOf(Manifest.permission.RECORD_AUDIO), RECORD_AUDIO)
        }
    }

    private fun runMicrophone(action: String) {
        val spec = state.model ?: return
        when (action) {
            MIC_RECORD_ONE -> Jobs.record(applicationContext, spec, 1)
            MIC_RECORD_BATCH -> Jobs.record(applicationContext, spec, BATCH)
            MIC_LISTEN -> { Jobs.listen(applicationContext); render() }
        }
    }

    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<out String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (requestCode != RECORD_AUDIO) return
        val action = pendingMicrophone
        pendingMicrophone = null
        if (grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) {
            state.microphoneBlocked = false
            action?.let { runMicrophone(it) }
        } else {
            // Refused with no rationale to show: "don't ask again" (or refused twice); only Settings can grant it.
            state.microphoneBlocked = !shouldShowRequestPermissionRationale(Manifest.permission.RECORD_AUDIO)
            state.status = getString(if (state.microphoneBlocked) R.string.microphone_refused_for_good else R.string.microphone_refused)
            render()
        }
    }

    companion object {
        /** The photo picker's request code (tests deliver its result to a recreated Activity). */
        const val PICK_PHOTOS = 1
        private const val RECORD_AUDIO = 2
        private const val MAX_PHOTOS = 50
        const val BATCH = 10
        const val MIC_RECORD_ONE = "record-one"
        const val MIC_RECORD_BATCH = "record-batch"
        const val MIC_LISTEN = "listen"
        const val KEY_SCREEN = "screen"
        const val KEY_USER = "user"
        const val KEY_PENDING_MICROPHONE = "pending-microphone"
    }
}
