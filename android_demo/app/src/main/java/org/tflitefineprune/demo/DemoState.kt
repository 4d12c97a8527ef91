package org.tflitefineprune.demo

import android.content.Context
import android.net.Uri
import android.os.Handler
import android.os.Looper
import org.tflitefineprune.core.BundledUser
import org.tflitefineprune.core.ModelSpec
import org.tflitefineprune.core.PersonalizationResult
import org.tflitefineprune.core.PersonalizationSession
import org.tflitefineprune.core.Tensor
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

/** The screens, in tab order (titles: string resources). */
enum class Screen { START, USERS, PERSONALIZE, PROFILES, LISTEN }

/**
 * What the interpreter runs: the dense model or a saved profile. Only the worker changes it (after the
 * interpreter accepted the change), so the label on screen is always what Evaluate and Listen run.
 */
class Held(val modelKey: String, val profile: String?) {
    val dense get() = profile == null
}

/**
 * What the demo holds across Activities: the model, its interpreter and session, the chosen user, Me's
 * samples, results, and the one worker thread that runs all model work (and file copies, decoding,
 * recording). Held by the process rather than the Activity, so a rotated Activity finds a running job and
 * its result, and cannot start a second one (AndroidX's ViewModel is not available to this build).
 *
 * Fields are read and written on the main thread only, except [held], which the worker owns. A job runs on
 * the worker and returns what to change; that block runs on the main thread when the job ends. A job that
 * fails puts the interpreter back to [held] before its failure is shown. The interpreter is only ever
 * touched by the worker, so it is never used by two threads at once nor closed under a running call.
 */
object DemoState {
    private var worker: ExecutorService = newWorker()
    /** Bumped by [shutDown]: a job of an earlier run of the app changes nothing when it ends. */
    private var generation = 0

    var activity: MainActivity? = null
    var started = false
    var appContext: Context? = null
    var assets: BundledAssets? = null
    @Volatile var model: ModelSpec? = null
    @Volatile var runner: OpenedModel? = null
    @Volatile var session: PersonalizationSession? = null
    /** What the interpreter runs now: written by the worker only. */
    @Volatile var held: Held? = null
    var user: BundledUser? = null // null: "Me"
    var meSamples: List<Tensor> = emptyList()
    var lastResult: PersonalizationResult? = null
    var evaluation: String? = null
    /** Me's personalization waiting for the user's yes or no; nothing of it is in the interpreter. */
    var consent: Consent? = null
    /** The profile the user chose (remembered across launches); null: the dense model. */
    var activeProfile: String? = null
    /** The current model's saved profiles, as the worker last listed them. */
    var profileNames: List<String> = emptyList()
    var screen = Screen.START
    /** A user chosen before the process died, restored once its model is loaded (MainActivity's saved state). */
    var restoreUser: String? = null
    var job: String? = null
    /** The running job is Listen's loop (which the Stop button and leaving the screen end). */
    var listening = false
    var status = ""
    var progressDone = 0
    var progressTotal = 0
    /** Microphone level, 0..100, while recording or listening; -1 otherwise. */
    var level = -1
    var heard = ""
    val queuedPhotos = ArrayList<Uri>()
    /** Listen shows a word only when its probability, averaged over recent windows, reaches this. */
    var listenThreshold = DEFAULT_LISTEN_THRESHOLD
    /** The microphone permission was refused with "don't ask again": only Settings can grant it now. */
    var microphoneBlocked = false

    /** The Dense / Personalized switch shows the dense model while keeping the chosen profile. */
    val showingDense get() = activeProfile != null && held?.profile == null

    /** Asks the running recording or Listen loop to end after its current read. */
    @Volatile var stopRequested = false

    private fun newWorker(): ExecutorService = Executors.newSingleThreadExecutor { r -> Thread(r, "fineprune-model").apply { isDaemon = true } }

    fun onMain(block: () -> Unit) {
        Handler(Looper.getMainLooper()).post(block)
    }

    /**
     * Starts [work] on the worker unless a job runs (then says so and returns false). [work] returns the
     * change to make on the main thread; an exception or running out of memory rolls the interpreter back
     * to [held] and becomes the status line.
     */
    fun start(what: String, work: () -> (() -> Unit)): Boolean {
        job?.let { running ->
            status = appContext?.getString(R.string.busy, running) ?: running
            activity?.renderStatus()
            return false
        }
        job = what
        status = what
        progressDone = 0
        progressTotal = 0
        stopRequested = false
        activity?.renderStatus()
        val mine = generation
        val files = appContext?.filesDir
        worker.execute {
            val change: () -> Unit = try {
                work()
            } catch (e: Exception) {
                failed(what, UserFacingException.describe(appContext, e))
            } catch (e: OutOfMemoryError) {
                failed(what, appContext?.getString(R.string.out_of_memory) ?: e.javaClass.simpleName)
            } catch (e: LinkageError) {
                failed(what, e.message ?: e.javaClass.simpleName) // e.g. the interpreter's native library
            }
            // Listed here, off the main thread; a job that opens another model lists that model's in its change.
            val names = model?.let { spec -> files?.let { ProfileStore(it).profiles(spec) } } ?: emptyList()
            onMain {
                if (mine != generation) return@onMain
                job = null
                listening = false
                level = -1
                if (status == what) status = ""
                profileNames = names
                change()
                activity?.render()
                activity?.startQueuedWork()
            }
        }
        return true
    }

    /** On the worker, after a failed job: the interpreter back to what [held] says, and the message. */
    private fun failed(what: String, message: String): () -> Unit {
        val restored = try {
            rollBack()
            null
        } catch (e: Exception) {
            UserFacingException.describe(appContext, e)
        }
        val app = appContext ?: return { status = message }
        val back = held?.profile?.let { app.getString(R.string.back_to_profile, it) } ?: app.getString(R.string.back_to_dense)
        return {
            status = if (restored == null) app.getString(R.string.job_failed, what, message, back)
                else app.getString(R.string.job_failed_twice, what, message, back, restored)
        }
    }

    /** On the worker: makes the interpreter run what [held] says (the last state a job completed). */
    fun rollBack() {
        val s = session ?: return
        val spec = model ?: return
        val files = appContext?.filesDir ?: return
        val profile = held?.profile
        if (profile == null) s.reset() else s.setState(ProfileStore(files).load(spec, profile))
    }

    /** From the worker: the status line and progress bar. */
    fun report(text: String, done: Int = 0, total: Int = 0) = onMain {
        status = text
        progressDone = done
        progressTotal = total
        activity?.renderStatus()
    }

    fun reportLevel(value: Int) = onMain {
        level = value
        activity?.renderStatus()
    }

    fun reportHeard(text: String) = onMain {
        heard = text
        activity?.renderHeard()
    }

    /** Waits until every job submitted so far has run (tests; leaving the app). */
    fun awaitWorker(timeoutSeconds: Long = 120): Boolean = try {
        worker.submit {}.get(timeoutSeconds, TimeUnit.SECONDS)
        true
    } catch (_: java.util.concurrent.TimeoutException) {
        false
    }

    /**
     * The app is left for good: loops stop, the interpreter is closed on the worker after any running
     * job, and the next launch starts afresh (as after the process ends).
     */
    fun shutDown() {
        stopRequested = true
        val closing = runner
        worker.execute { closing?.close() }
        worker.shutdown()
        worker = newWorker()
        generation++
        activity = null
        started = false
        assets = null
        model = null
        runner = null
        session = null
        held = null
        user = null
        meSamples = emptyList()
        lastResult = null
        evaluation = null
        consent = null
        activeProfile = null
        profileNames = emptyList()
        screen = Screen.START
        restoreUser = null
        job = null
        listening = false
        status = ""
        level = -1
        heard = ""
        queuedPhotos.clear()
        microphoneBlocked = false
        listenThreshold = DEFAULT_LISTEN_THRESHOLD
    }

    const val DEFAULT_LISTEN_THRESHOLD = 0.6
}
