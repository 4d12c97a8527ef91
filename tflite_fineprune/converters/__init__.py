"""Converters: real speech and vision models → personalizable `.tflite` with their front-end inside."""

import sys

# `python -m tflite_fineprune.converters.speech|vision ...`: the converter module imports TensorFlow at its top,
# before its argument parser runs, so TensorFlow's start-up lines are quieted here (the package is imported first;
# Python sets sys.argv[0] to "-m" while it locates the module). `--verbose` keeps them.
if sys.argv[:1] == ["-m"] and "--verbose" not in sys.argv:
    from ..native_logs import silence_tensorflow

    silence_tensorflow()
