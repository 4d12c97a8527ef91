package org.tflitefineprune.demo

import android.content.Context
import android.net.Uri
import org.tflitefineprune.core.Audio
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
 * The jobs the screens start, run on [DemoState]'s worker. They take the application context, never an
 * Activity: a job outlives a rotation or a closed screen without holding it. Each returns the change to make
 * on the main thread; each that changes what the interpreter runs sets [DemoState.held] itself, after the
 * interpreter accepted the change.
 */
object Jobs {
    private val state = DemoState

    /** Seconds of microphone per clip: the one-second window with the word is taken from it. */
    private const val CLIP_SECONDS = 1.5

    fun preferences(app: Context) = app.getSharedPreferences("fineprune-demo", Context.MODE_PRIVATE)

    private fun activeKey(spec: ModelSpec) = "active_${spec.key}"

    fun remember(app: Context, spec: ModelSpec, profile: String?) {
        val edit = preferences(app).edit()
        if (profile == null) edit.remove(activeKey(spec)) else edit.putString(activeKey(spec), profile)
        edit.apply()
    }

    /** The model's words a user can say: its labels without the `_silence_` / `_unknown_` classes. */
    fun vocabulary(spec: ModelSpec): List<String> = spec.layout.labels.filter { !it.startsWith("_") }.ifEmpty { spec.layout.labels }

    fun launch(app: Context) = state.start(app.getString(R.string.job_loading)) {
        val assets = BundledAssets(DemoServices.assets(app), app.filesDir)
        val last = preferences(app).getString(LAST_MODEL, null)
        val spec = assets.manifest.models.firstOrNull { it.key == last } ?: assets.manifest.models.first()
        val opened = open(app, assets, spec, null, keepQueued = true);
        { state.assets = assets; opened() }
    }

    fun switchModel(app: Context, assets: BundledAssets, other: ModelSpec) {
        val previous = state.runner
        state.start(app.getString(R.string.job_switching, other.name)) { open(app, assets, other, previous, keepQueued = false) }
    }

    /** Opens [spec] on the worker, then closes [previous]; the returned block makes [spec] current. */
    private fun open(app: Context, assets: BundledAssets, spec: ModelSpec, previous: OpenedModel?, keepQueued: Boolean): () -> Unit {
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
        val profiles = ProfileStore(app.filesDir)
        val saved = preferences(app).getString(activeKey(spec), null)?.takeIf { it in profiles.profiles(spec) }
        val notes = ArrayList<String>()
        val active = saved?.let {
            try {
                session.setState(profiles.load(spec, it))
                it
            } catch (e: Exception) {
                notes.add(app.getString(R.string.note_profile_unreadable, it, e.message))
                null
            }
        }
        val me = try {
            MeStore(app.filesDir).load(spec)
        } catch (e: Exception) {
            notes.add(app.getString(R.string.note_samples_unreadable, e.message))
            emptyList()
        }
        // A question that waited when the process ended is asked again (never applied without the user's yes).
        val consents = ConsentStore(app.filesDir)
        val consent = try {
            consents.load(spec)
        } catch (e: Exception) {
            consents.delete(spec)
            notes.add(app.getString(R.string.note_question_unreadable, e.message))
            null
        }
        val names = profiles.profiles(spec)
        state.held = Held(spec.key, active)
        return {
            state.profileNames = names
            state.model = spec
            state.runner = opened
            state.session = session
            val users = state.assets?.manifest?.users ?: assets.manifest.users
            state.user = when (val wanted = state.restoreUser) {
                null -> users.firstOrNull { it.model == spec.key }
                ME -> null
                else -> users.firstOrNull { it.model == spec.key && it.name == wanted } ?: users.firstOrNull { it.model == spec.key }
            }
            state.restoreUser = null
            state.meSamples = me
            if (!keepQueued) state.queuedPhotos.clear()
            state.lastResult = null
            state.evaluation = null
            state.consent = consent
            state.activeProfile = active
            state.status = notes.joinToString(app.getString(R.string.notes_separator)).ifEmpty { active?.let { app.getString(R.string.status_profile_active, it) } ?: "" }
            preferences(app).edit().putString(LAST_MODEL, spec.key).apply()
        }
    }

    /**
     * Clips from one open microphone: the countdown reads (and drops) what the microphone hears before the user
     * is asked to speak; then each clip shows the word to say, records [CLIP_SECONDS] and keeps the one-second
     * window with the most energy. A clip of exact zeros (the microphone switched off in Android 12+'s quick
     * settings) is left out and counted, the rest of the batch kept.
     */
    fun record(app: Context, spec: ModelSpec, count: Int) {
        val before = state.meSamples
        val words = vocabulary(spec)
        state.start(app.resources.getQuantityString(R.plurals.job_recording, count, count)) {
            val rate = spec.sampleRate
            val clips = ArrayList<Tensor>()
            var zeroClips = 0
            var peak = 0.0
            val meter = { buffer: ShortArray, offset: Int, n: Int ->
                val rms = AudioLevel.rms(WavReader.fromPcm16(buffer.copyOfRange(offset, offset + n), rate).samples)
                DemoState.reportLevel(AudioLevel.meter(rms))
                rms
            }
            DemoServices.microphone.open(rate).use { mic ->
                for (second in DemoServices.countdownSeconds downTo 1) {
                    if (state.stopRequested) break
                    DemoState.report(app.getString(R.string.recording_in, second))
                    mic.drain(rate, rate / 10) { b, o, n -> meter(b, o, n) }
                }
                for (i in 1..count) {
                    if (state.stopRequested) break
                    val word = words[(before.size + i - 1) % words.size]
                    DemoState.report(app.getString(R.string.say_word, word, i, count), i - 1, count)
                    val pcm = mic.readFully((rate * CLIP_SECONDS).toInt(), rate / 10) { b, o, n -> peak = maxOf(peak, meter(b, o, n)) }
                    if (pcm.all { it.toInt() == 0 }) { zeroClips++; continue }
                    val window = SpeechWindow.centred(WavReader.fromPcm16(pcm, rate).samples, spec.input.elements)
                    val samples = WavReader.fit(Audio(window, rate), spec.input.elements, rate, app.getString(R.string.clip_name, i))
                    clips.add(BundledAssets.audioSample(spec, samples))
                }
            }
            val all = before + clips
            if (clips.isNotEmpty()) MeStore(app.filesDir).save(spec, all)
            val attempted = if (state.stopRequested) clips.size + zeroClips else count
            val res = app.resources
            val text = StringBuilder(res.getQuantityString(R.plurals.status_recorded, count, clips.size, count))
            if (attempted < count) text.append(app.getString(R.string.status_stopped))
            text.append(app.getString(R.string.status_loudest, AudioLevel.dbfs(peak)))
            if (zeroClips > 0) {
                text.append(res.getQuantityString(R.plurals.status_zero_clips, zeroClips, zeroClips))
            } else if (AudioLevel.dbfs(peak) < AudioLevel.SILENCE_DBFS) {
                text.append(app.getString(R.string.status_too_quiet))
            }
            {
                state.meSamples = all
                state.status = text.toString()
            }
        }
    }

    /** Picked photos, each opened once, decoded small and upright, added to Me's samples and saved. */
    fun decodePhotos(app: Context, spec: ModelSpec, uris: List<Uri>) {
        val size = spec.imageSize ?: return
        val before = state.meSamples
        val res = app.resources
        state.start(res.getQuantityString(R.plurals.job_decoding, uris.size, uris.size)) {
            val added = ArrayList<Tensor>()
            val failed = ArrayList<String>()
            for ((i, uri) in uris.withIndex()) {
                DemoState.report(app.getString(R.string.decoding_photo, i + 1, uris.size), i, uris.size)
                try {
                    added.add(BundledAssets.imageSample(spec, PhotoDecoder.decode(app.contentResolver, uri, app.cacheDir, size[1], size[0])))
                } catch (e: Exception) {
                    failed.add(app.getString(R.string.named_failure, uri.lastPathSegment, UserFacingException.describe(app, e)))
                } catch (e: OutOfMemoryError) {
                    failed.add(app.getString(R.string.named_failure, uri.lastPathSegment, app.getString(R.string.out_of_memory)))
                }
            }
            val all = before + added
            if (added.isNotEmpty()) MeStore(app.filesDir).save(spec, all)
            val text = res.getQuantityString(R.plurals.status_photos_added, added.size, added.size) +
                if (failed.isEmpty()) "" else app.getString(R.string.status_not_added, failed.joinToString(app.getString(R.string.notes_separator)));
            {
                state.meSamples = all
                state.status = text
            }
        }
    }

    fun clearMe(app: Context, spec: ModelSpec) = state.start(app.getString(R.string.job_clearing)) {
        MeStore(app.filesDir).save(spec, emptyList())
        ConsentStore(app.filesDir).delete(spec);
        { state.meSamples = emptyList(); state.consent = null; state.status = app.getString(R.string.status_me_cleared) }
    }

    /** A bundled user: before, the recipe, after; a result that changed something is saved and switched on. */
    fun personalizeUser(app: Context, assets: BundledAssets, u: BundledUser) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_personalizing)) {
            val result = s.personalize(u.adapt.map { assets.sample(spec, it) }, u.eval.map { assets.sample(spec, it.file) },
                u.eval.map { it.label }.toIntArray(), progress(app))
            // A recipe that changed nothing leaves the model as it was (dense or the profile held before).
            val changed = result.auto?.steps?.isNotEmpty() ?: true
            val stored = if (changed) ProfileStore(app.filesDir).save(spec, u.name, result.state) else null
            if (stored != null) state.held = Held(spec.key, stored) else DemoState.rollBack();
            {
                state.lastResult = result
                state.evaluation = null
                if (stored != null) {
                    state.activeProfile = stored
                    remember(app, spec, stored)
                    state.status = app.getString(R.string.status_profile_saved, stored)
                } else {
                    state.status = app.getString(R.string.status_nothing_changed)
                }
            }
        }
    }

    /**
     * Me: the automatic recipe on Me's unlabeled samples, then the interpreter is put back to what it held; what
     * the recipe found waits for the user's consent ([applyConsent]) on the screen.
     */
    fun personalizeMe(app: Context, samples: List<Tensor>) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_personalizing)) {
            val result = personalizeSamples(s, samples, progress(app))
            DemoState.rollBack()
            val consent = Consent.of(spec, result, samples.size)
            // Saved before it is shown: a process ended while the question waits asks it again.
            ConsentStore(app.filesDir).save(spec, consent);
            {
                state.consent = consent
                state.lastResult = null
                state.evaluation = null
                state.status = app.getString(if (consent.changes) R.string.status_review else R.string.status_nothing_changed)
            }
        }
    }

    private fun personalizeSamples(s: PersonalizationSession, samples: List<Tensor>, progress: PersonalizationSession.Progress): PersonalizationResult {
        val spec = s.model
        val start = System.currentTimeMillis()
        val rule = spec.recipe.auto
        val report = if (rule != null) AutoRecipe.personalize(s, samples, rule, progress) else {
            s.reset()
            s.observe(samples, progress)
            s.applyRecipe()
            null
        }
        val personal = s.getState()
        return PersonalizationResult(Double.NaN, Double.NaN, Sparsity.measure(spec.layout, personal.masks),
            spec.layout.excludedClasses(personal.masks), personal, System.currentTimeMillis() - start, report)
    }

    /** The user said yes: Me's profile saved and switched on. */
    fun applyConsent(app: Context, consent: Consent) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_applying)) {
            val stored = ProfileStore(app.filesDir).save(spec, ME, consent.result.state)
            s.setState(consent.result.state)
            state.held = Held(spec.key, stored)
            ConsentStore(app.filesDir).delete(spec);
            {
                state.consent = null
                state.lastResult = consent.result
                state.activeProfile = stored
                remember(app, spec, stored)
                state.status = app.getString(R.string.status_profile_saved, stored)
            }
        }
    }

    /** The user said no (or took note that nothing would change): the question is gone, here and in storage. */
    fun dismissConsent(app: Context, statusId: Int?) {
        val spec = state.model ?: return
        state.start(app.getString(R.string.job_discarding)) {
            ConsentStore(app.filesDir).delete(spec);
            {
                state.consent = null
                if (statusId != null) state.status = app.getString(statusId)
            }
        }
    }

    /** The non-destructive switch: the dense model or the chosen profile, on the same inputs. */
    fun showDense(app: Context, dense: Boolean) {
        val spec = state.model ?: return
        val s = state.session ?: return
        val name = state.activeProfile ?: return
        state.start(app.getString(if (dense) R.string.job_showing_dense else R.string.job_showing_profile, name)) {
            if (dense) s.reset() else s.setState(ProfileStore(app.filesDir).load(spec, name))
            state.held = Held(spec.key, if (dense) null else name);
            { state.evaluation = null }
        }
    }

    fun evaluate(app: Context, assets: BundledAssets, u: BundledUser) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_evaluating)) {
            // The label is read on the worker, from what the interpreter holds while it runs.
            val shown = heldLabel(app, state.held)
            val accuracy = s.accuracy(u.eval.map { assets.sample(spec, it.file) }, u.eval.map { it.label }.toIntArray(), progress(app));
            { state.evaluation = app.getString(R.string.evaluation, shown, u.name, pct(accuracy)) }
        }
    }

    fun useProfile(app: Context, name: String) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_loading_profile, name)) {
            s.setState(ProfileStore(app.filesDir).load(spec, name))
            state.held = Held(spec.key, name);
            { state.activeProfile = name; remember(app, spec, name); state.status = app.getString(R.string.status_profile_active, name) }
        }
    }

    fun revert(app: Context) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_reverting)) {
            s.reset()
            state.held = Held(spec.key, null);
            { state.activeProfile = null; remember(app, spec, null); state.status = app.getString(R.string.status_dense_in_use) }
        }
    }

    fun delete(app: Context, name: String) {
        val spec = state.model ?: return
        val s = state.session ?: return
        state.start(app.getString(R.string.job_deleting, name)) {
            if (state.held?.profile == name) {
                s.reset()
                state.held = Held(spec.key, null)
            }
            ProfileStore(app.filesDir).delete(spec, name);
            {
                if (state.activeProfile == name) { state.activeProfile = null; remember(app, spec, null) }
                state.status = app.getString(R.string.status_profile_deleted, name)
            }
        }
    }

    /**
     * One open microphone; a one-second window every half second (overlapping, so a word across a window edge
     * is heard whole); quiet windows are not classified. The probabilities of the last [LISTEN_SMOOTHING]
     * windows are averaged, and a word is shown only when its average reaches the threshold.
     */
    fun listen(app: Context) {
        val spec = state.model ?: return
        val s = state.session ?: return
        val threshold = state.listenThreshold
        val started = state.start(app.getString(R.string.job_listening)) {
            val rate = spec.sampleRate
            val windows = SlidingWindow(spec.input.elements, spec.input.elements / 2)
            val recent = ArrayDeque<DoubleArray>()
            DemoServices.microphone.open(rate).use { mic ->
                val chunk = ShortArray(rate / 10)
                while (!state.stopRequested) {
                    val n = mic.read(chunk, 0, chunk.size)
                    val samples = WavReader.fromPcm16(chunk.copyOf(n), rate).samples
                    DemoState.reportLevel(AudioLevel.meter(AudioLevel.rms(samples)))
                    for (window in windows.push(samples)) {
                        if (AudioLevel.dbfs(AudioLevel.rms(window)) < AudioLevel.SILENCE_DBFS) {
                            recent.clear()
                            DemoState.reportHeard(app.getString(R.string.heard_quiet))
                            continue
                        }
                        recent.addLast(probabilities(s.scores(BundledAssets.audioSample(spec, window))))
                        if (recent.size > LISTEN_SMOOTHING) recent.removeFirst()
                        DemoState.reportHeard(heard(app, spec, smoothed(recent), threshold))
                    }
                }
            };
            { state.status = app.getString(R.string.status_listening_stopped) }
        }
        if (started) state.listening = true
    }

    /** The mean of the windows' class probabilities. */
    fun smoothed(windows: Collection<DoubleArray>): DoubleArray {
        val mean = DoubleArray(windows.first().size)
        for (p in windows) for (i in mean.indices) mean[i] += p[i] / windows.size
        return mean
    }

    /** The word and its smoothed probability, or "not sure" below [threshold]. */
    fun heard(app: Context, spec: ModelSpec, p: DoubleArray, threshold: Double): String {
        val best = p.indices.maxByOrNull { p[it] }!!
        val word = spec.layout.labels.getOrElse(best) { best.toString() }
        return app.getString(if (p[best] >= threshold) R.string.heard_word else R.string.heard_unsure, word, pct(p[best]))
    }

    fun heldLabel(app: Context, held: Held?): String =
        held?.profile?.let { app.getString(R.string.label_personalized, it) } ?: app.getString(R.string.label_dense)

    private fun progress(app: Context) = PersonalizationSession.Progress { stage, done, total ->
        val name = when (stage) {
            "observe" -> app.getString(R.string.stage_observe)
            "evaluate" -> app.getString(R.string.stage_evaluate)
            else -> stage
        }
        DemoState.report(app.getString(R.string.progress, name, done, total), done, total)
    }

    fun pct(value: Double) = if (value.isNaN()) "–" else String.format(Locale.US, "%.1f%%", 100 * value)

    /** Windows averaged by Listen (1.5 s of speech at a half-second hop). */
    const val LISTEN_SMOOTHING = 3
    /** The profile name Me's personalization is saved under. */
    const val ME = "me"
    private const val LAST_MODEL = "model"
}
