"""The converters moved into the package: `tflite_fineprune.converters` (installed with it).

This folder stays in the checkout (it is not installed) so that the old `python -m converters.speech …` and
`python -m converters.vision …` commands still run, after one line on stderr saying where they went.
"""
