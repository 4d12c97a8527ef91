"""Converters: real speech and vision models → personalizable `.tflite` with their front-end inside."""
