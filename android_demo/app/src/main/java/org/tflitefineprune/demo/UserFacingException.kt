package org.tflitefineprune.demo

import android.content.Context

/**
 * A failure the user can act on (the microphone busy, a photo that cannot be decoded), told in their language:
 * the message is a string resource, formatted where it is shown ([text]). Diagnostics for a broken build (a
 * missing asset, a damaged model) stay [org.tflitefineprune.core.FinePruneException]s in English.
 */
class UserFacingException(val messageId: Int, vararg val args: Any, cause: Throwable? = null) :
    Exception("string resource $messageId ${args.joinToString()}", cause) {
    fun text(context: Context): String = context.getString(messageId, *args)

    companion object {
        /** What to show for [e]: its string resource where it has one, else its message or its class name. */
        fun describe(context: Context?, e: Throwable): String =
            (e as? UserFacingException)?.let { u -> context?.let { u.text(it) } } ?: e.message ?: e.javaClass.simpleName
    }
}
