"""Pick a TFLite interpreter without importing TensorFlow unless asked to.

Order for `backend="auto"`: LiteRT (`ai_edge_litert`), then `tflite_runtime`,
then `tensorflow.lite` (deprecated, last resort).
"""

import functools
import importlib
import re
import warnings
from importlib import metadata

from .errors import FinePruneError, ModelError
from .native_logs import native_stderr

_INTERPRETERS = {  # backend -> (module, attribute path of the Interpreter class)
    "litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}
BACKENDS = tuple(_INTERPRETERS)

# tflite-runtime's last release, 2.14, was built against numpy 1.x: under numpy 2 its interpreter prints numpy's
# 30-line "compiled using NumPy 1.x" report and fails (SystemError, `_ARRAY_API not found`). pip gets there when
# an extra installed later (slim, litert) brings numpy 2: `pip install ".[tflite-runtime]"`, then ".[slim]".
_FIRST_RUNTIME_FOR_NUMPY_2 = (2, 15)


class BackendFallbackWarning(UserWarning):
    """`backend="auto"` did not use an installed interpreter because it cannot run here (the message says why)."""


def _release(version):
    """(major, minor) of a version string such as "2.14.0" or "2.0.0rc1"."""
    found = re.match(r"(\d+)(?:\.(\d+))?", version)
    return (int(found[1]), int(found[2] or 0)) if found else (0, 0)


@functools.lru_cache(maxsize=None)
def tflite_runtime_mismatch():
    """One line saying why the installed tflite-runtime cannot run with the installed numpy, and the command
    that fixes it; None where tflite-runtime is not installed or the pair works.

    Read from the installed versions, without importing tflite-runtime (whose failure under numpy 2 is a
    traceback, not an exception to catch).
    """
    try:
        runtime = metadata.version("tflite-runtime")
    except metadata.PackageNotFoundError:
        return None
    import numpy

    if _release(numpy.__version__) < (2, 0) or _release(runtime) >= _FIRST_RUNTIME_FOR_NUMPY_2:
        return None
    try:  # numpy<2 alone would leave LiteRT's ml_dtypes needing numpy 2: resolve them together
        metadata.version("ai-edge-litert")
        fix = 'pip install "numpy<2" ai-edge-litert'
    except metadata.PackageNotFoundError:
        fix = 'pip install "numpy<2"'
    return (f"tflite-runtime {runtime} was built against numpy 1.x but numpy {numpy.__version__} is installed "
            f"(a later pip install upgraded it); fix: {fix}")


def _interpreter_class(backend):
    module_name, attribute = _INTERPRETERS[backend]
    found = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def open_interpreter(model_path, backend="auto", num_threads=None, content=None):
    """Return `(interpreter, backend_name)` for a model file (or its bytes, `content`)."""
    if backend not in ("auto",) + BACKENDS:
        raise FinePruneError(f"unknown backend {backend!r}; expected 'auto' or one of {', '.join(BACKENDS)}")
    candidates = BACKENDS if backend == "auto" else (backend,)
    errors = []
    for name in candidates:
        if name == "tflite_runtime" and tflite_runtime_mismatch():
            if backend == name:
                raise FinePruneError(tflite_runtime_mismatch())
            errors.append(f"{name}: {tflite_runtime_mismatch()}")
            continue
        try:
            cls = _interpreter_class(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        try:
            source = {"model_content": bytes(content)} if content is not None else {"model_path": str(model_path)}
            with native_stderr():  # held back only after native_logs.silence_interpreters / silence_tensorflow
                interpreter = cls(**source, num_threads=num_threads)
                if name != "tflite_runtime":  # 2.14 crashes later when the main graph was allocated first
                    _allocate(interpreter)
            if backend == "auto" and tflite_runtime_mismatch() and name != "tflite_runtime":
                _note_fallback(name)
            return interpreter, name
        except (ValueError, RuntimeError, TypeError) as exc:
            raise ModelError(f"{model_path}: the {name} interpreter rejected the model ({exc})") from None
    if tflite_runtime_mismatch():  # installed, but not runnable: the fix, not another install
        raise FinePruneError(f"{tflite_runtime_mismatch()}; no other TFLite interpreter is installed")
    raise FinePruneError(
        "no TFLite interpreter is installed (tried " + "; ".join(errors) + "). "
        "Install one: pip install ai-edge-litert (or tflite-runtime)"
    )


@functools.lru_cache(maxsize=None)
def _note_fallback(used):
    """Said once a process: the default backend ran `used`, not the tflite-runtime the user installed."""
    warnings.warn(f"{tflite_runtime_mismatch()}; the default backend uses {used} instead", BackendFallbackWarning,
                  stacklevel=4)


def _allocate(interpreter):
    """The first allocation applies the default delegate (XNNPACK), which prints a note: done here, inside
    `native_stderr`, so that the note is held back with the rest. A model whose main graph cannot be allocated
    on its own is left to its signature runners, as before."""
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError):
        pass
