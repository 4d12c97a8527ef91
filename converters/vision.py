"""`python -m converters.vision` moved to `python -m tflite_fineprune.converters.vision`: this runs that, saying so."""

import runpy
import sys

if __name__ == "__main__":
    print("converters.vision moved: run python -m tflite_fineprune.converters.vision", file=sys.stderr)
    if "--verbose" not in sys.argv:  # as the package does for its own `-m` run: TensorFlow's start-up lines stay out
        from tflite_fineprune.native_logs import silence_tensorflow

        silence_tensorflow()
    runpy.run_module("tflite_fineprune.converters.vision", run_name="__main__", alter_sys=True)
