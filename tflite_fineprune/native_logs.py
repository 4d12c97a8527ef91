"""Keep TensorFlow's start-up chatter out of the commands' output unless `--verbose`.

Importing TensorFlow prints about ten lines (oneDNN notes, "Could not find cuda
drivers", on some machines a `cuInit` error) through absl *before* it reads
`TF_CPP_MIN_LOG_LEVEL`, so the variable alone cannot hide them: the commands
import TensorFlow once with the process's native stderr pointed at a temporary
file, and replay that file only if the import fails. The runtime commands,
which never import TensorFlow, hold back only the interpreters' own notes
(`silence_interpreters`). Library users who call neither see everything, as
TensorFlow intends.
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings

_enabled = False


def silence_tensorflow(verbose=False):
    """Quiet TensorFlow, Keras, absl and the TFLite interpreter for this process (no-op when `verbose`).

    Call before TensorFlow is imported; safe to call again.
    """
    global _enabled
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    _enabled = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also hides the cuInit error on CPU-only machines
    for module in ("tensorflow", "keras", "absl", "google.protobuf", "h5py"):
        warnings.filterwarnings("ignore", module=module)
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with native_stderr():
        try:
            import tensorflow as tf  # noqa: F401  (imported here so its start-up lines go nowhere)
        except ImportError:  # runtime-only installs: nothing to quiet
            return
    tf.get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def silence_interpreters():
    """Hold back the TFLite interpreters' native notes (e.g. "INFO: Created TensorFlow Lite XNNPACK delegate
    for CPU.", printed by the first allocation) without importing TensorFlow: the runtime commands call this.
    """
    global _enabled
    _enabled = True


@contextlib.contextmanager
def native_stderr():
    """While active (after `silence_tensorflow`), C/C++ writes to stderr are held back.

    Python's own `sys.stderr` keeps writing to the real stderr, so progress
    bars and errors still show. If the block raises, the held-back text is
    printed after all: it may explain the failure.
    """
    if not _enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real file descriptor 2 (e.g. some notebooks)
        yield
        return
    held = _held_file()
    if held is None:  # nowhere to hold it: the notes show, the command still runs
        os.close(saved)
        yield
        return
    python_stderr = sys.stderr
    with held:
        os.dup2(held.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None))
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                python_stderr.write(held.read().decode("utf-8", "replace"))
                python_stderr.flush()


def _held_file():
    """A file for the held-back text: in memory where the OS offers it (no temporary folder needed, so an
    unwritable TMPDIR cannot fail a command), else a temporary file; None when neither can be made."""
    if hasattr(os, "memfd_create"):
        try:
            return os.fdopen(os.memfd_create("fineprune-stderr"), "w+b")
        except OSError:
            pass
    try:
        return tempfile.TemporaryFile()
    except OSError:
        return None
