"""`python -m converters.speech` moved to `python -m tflite_fineprune.converters.speech`: this runs that, saying so."""

import runpy
import sys

if __name__ == "__main__":
    print("converters.speech moved: run python -m tflite_fineprune.converters.speech", file=sys.stderr)
    if "--verbose" not in sys.argv:  # as the package does for its own `-m` run: TensorFlow's start-up lines stay out
        from tflite_fineprune.native_logs import silence_tensorflow

        silence_tensorflow()
    runpy.run_module("tflite_fineprune.converters.speech", run_name="__main__", alter_sys=True)
