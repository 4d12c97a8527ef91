"""Pick a TFLite interpreter without importing TensorFlow unless asked to.

Order for `backend="auto"`: LiteRT (`ai_edge_litert`), then `tflite_runtime`,
then `tensorflow.lite` (deprecated, last resort).
"""

import importlib

from .errors import FinePruneError
from .quiet import native_stderr

_INTERPRETERS = {  # backend -> (module, attribute path of the Interpreter class)
    "litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}
BACKENDS = tuple(_INTERPRETERS)


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
        try:
            cls = _interpreter_class(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        try:
            source = {"model_content": bytes(content)} if content is not None else {"model_path": str(model_path)}
            with native_stderr():  # held back only after quiet.silence_interpreters / silence_tensorflow
                interpreter = cls(**source, num_threads=num_threads)
                if name != "tflite_runtime":  # 2.14 crashes later when the main graph was allocated first
                    _allocate(interpreter)
            return interpreter, name
        except (ValueError, RuntimeError, TypeError) as exc:
            raise FinePruneError(f"{model_path}: the {name} interpreter rejected the model ({exc})") from None
    raise FinePruneError(
        "no TFLite interpreter is installed (tried " + "; ".join(errors) + "). "
        "Install one: pip install ai-edge-litert (or tflite-runtime)"
    )


def _allocate(interpreter):
    """The first allocation applies the default delegate (XNNPACK), which prints a note: done here, inside
    `native_stderr`, so that the note is held back with the rest. A model whose main graph cannot be allocated
    on its own is left to its signature runners, as before."""
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError):
        pass
