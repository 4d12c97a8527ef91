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

/** The screens, in tab order. */
enum class Screen(val title: String) { MODEL("Model"), USERS("Users"), PERSONALIZE("Personalize"), PROFILES("Profiles"), LISTEN("Listen") }

/**
 * What the demo holds across Activities: the model, its interpreter and session, the chosen user, Me's
 * samples, results, and the one worker thread that runs all model work (and file copies, decoding,
 * recording). Held by the process rather than the Activity, so a rotated Activity finds a running job and
 * its result, and cannot start a second one (AndroidX's ViewModel is not available to this build).
 *
 * Fields are read and written on the main thread only. A job runs on the worker and returns what to
 * change; that block runs on the main thread when the job ends. The interpreter is only ever touched by
 * the worker, so it is never used by two threads at once nor closed under a running call.
 */
object DemoState {
    private var worker: ExecutorService = newWorker()
    /** Bumped by [shutDown]: a job of an earlier run of the app changes nothing when it ends. */
    private var generation = 0

    var activity: MainActivity? = null
    var started = false
    var appContext: Context? = null
    var assets: BundledAssets? = null
    var model: ModelSpec? = null
    var runner: OpenedModel? = null
    var session: PersonalizationSession? = null
    var user: BundledUser? = null // null: "Me"
    var meSamples: List<Tensor> = emptyList()
    var lastResult: PersonalizationResult? = null
    var evaluation: String? = null
    /** The stored name of the profile loaded at start and after Use; null: the dense model. */
    var activeProfile: String? = null
    /** The Dense / Personalized switch: true shows the dense model while keeping the active profile. */
    var showingDense = false
    var screen = Screen.MODEL
    var job: String? = null
    var status = ""
    var progressDone = 0
    var progressTotal = 0
    /** Microphone level, 0..100, while recording or listening; -1 otherwise. */
    var level = -1
    var heard = ""
    val queuedPhotos = ArrayList<Uri>()

    /** Asks the running recording or Listen loop to end after its current read. */
    @Volatile var stopRequested = false

    private fun newWorker(): ExecutorService = Executors.newSingleThreadExecutor { r -> Thread(r, "fineprune-model").apply { isDaemon = true } }

    fun onMain(block: () -> Unit) {
        Handler(Looper.getMainLooper()).post(block)
    }

    /**
     * Starts [work] on the worker unless a job runs (then says so and returns false). [work] returns the
     * change to make on the main thread; an exception or running out of memory becomes the status line.
     */
    fun start(what: String, work: () -> (() -> Unit)): Boolean {
        job?.let { running ->
            status = "busy $running: wait until it finishes"
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
        worker.execute {
            val change: () -> Unit = try {
                work()
            } catch (e: Exception) {
                { status = "$what failed: ${e.message ?: e.javaClass.simpleName}" }
            } catch (e: OutOfMemoryError) {
                { status = "$what failed: out of memory" }
            } catch (e: LinkageError) {
                { status = "$what failed: ${e.message ?: e.javaClass.simpleName}" } // e.g. the interpreter's native library
            }
            onMain {
                if (mine != generation) return@onMain
                job = null
                level = -1
                if (status == what) status = ""
                change()
                activity?.render()
                activity?.startQueuedWork()
            }
        }
        return true
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
        user = null
        meSamples = emptyList()
        lastResult = null
        evaluation = null
        activeProfile = null
        showingDense = false
        screen = Screen.MODEL
        job = null
        status = ""
        level = -1
        heard = ""
        queuedPhotos.clear()
    }
}
