"""The recorded app session sets each state block through the setter the model's metadata names (as the app
does), and falls back to the lever table for a manifest whose metadata predates `state_blocks`."""

from tflite_fineprune.converters.android_session import AppSession
from tflite_fineprune import levers


def _session(metadata):
    return AppSession({"metadata": metadata, "signatures": {}}, call=None)


def test_the_session_reads_the_blocks_from_the_metadata():
    described = [{"lever": "open_set_guard", "flag": 32, "since": 5, "set_signature": "set_guard",
                  "fields": [{"name": "guard_scores", "length": 4, "per_unit": True}]}]
    assert _session({"state_blocks": described})._state_blocks() == [("set_guard", ["guard_scores"])]


def test_a_manifest_without_the_description_uses_the_lever_table():
    table = [(lever.set_signature, list(lever.block.fields)) for lever in levers.LEVERS if lever.block is not None]
    assert _session({})._state_blocks() == table
    assert ("set_magnitudes", ["magnitudes"]) in table
