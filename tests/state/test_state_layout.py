"""The state-block layout an export records in its metadata (`state_blocks`), without TensorFlow.

Readers take each block's vectors and lengths from the model: Python's codec here, the Android codec in
android_demo/core (StateCodecTest reads tests/data/state_v4_all.layout.json, checked below to be what
`levers.describe` writes for the golden files' model, together with the Python-written golden state).
"""

import dataclasses
import json
import pathlib

import pytest

from tflite_fineprune import levers
from tflite_fineprune import signatures as sig
from tflite_fineprune import state as codec
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.metadata import ModelMetadata, UnitGroup

DATA = pathlib.Path(__file__).parents[1] / "data"
FP = "5a" * 32
UNITS, CLASSES, CHANNELS, FEATURES = 6, 3, 4, 2  # the golden state files' model (tests/state/test_state_codec.py)


def _metadata(**fields):
    groups = (UnitGroup("conv", "Conv2D", UNITS - CLASSES, 0, 16, "hidden", 1.0, 1.0),
              UnitGroup("dense", "Dense", CLASSES, UNITS - CLASSES, 1, "output", 1.0, 1.0))
    base = dict(format_version=1, fingerprint=FP, input_name=sig.INPUT, input_shape=(None, 4, 4, 1),
                input_dtype="float32", output_name=sig.OUTPUT, output_kind="logits", num_classes=CLASSES, labels=(),
                policy="layerwise", groups=groups, weight_layers=(), total_weights=1, total_macs=1,
                signatures=sig.REQUIRED + tuple(name for lever in levers.LEVERS for name in lever.signatures),
                mean_compensation=True, prior_correction=True, normalization_layers=(("bn", CHANNELS, 0),),
                classifier_head=("dense", FEATURES, 0.9))
    meta = ModelMetadata(**{**base, **fields})
    return dataclasses.replace(meta, state_blocks=levers.describe(meta))


def test_the_description_names_every_block_the_export_keeps_with_its_lengths():
    described = levers.described_blocks(_metadata())
    assert list(described) == [name for name, _ in levers.blocks()]
    assert described["classifier_prototypes"] == {
        "lever": "classifier_prototypes", "flag": 8, "since": 3, "set_signature": sig.SET_PROTOTYPES,
        "fields": [{"name": sig.PROTO_COUNTS, "length": CLASSES, "per_unit": False},
                   {"name": sig.PROTO_SUMS, "length": CLASSES * FEATURES, "per_unit": False},
                   {"name": sig.HEAD_KERNEL, "length": FEATURES * CLASSES, "per_unit": False}]}
    assert described["mean_compensation"]["fields"][0] == {"name": sig.SUMS, "length": UNITS, "per_unit": True}
    # an export without a lever describes no block for it
    plain = _metadata(mean_compensation=False, prior_correction=False, normalization_layers=(), classifier_head=(),
                      signatures=sig.REQUIRED)
    assert plain.state_blocks == ()


def test_metadata_round_trips_the_description_and_older_metadata_has_none():
    meta = _metadata()
    again = ModelMetadata.from_json(meta.to_json())
    assert again == meta and again.state_blocks == levers.describe(meta)
    body = json.loads(meta.to_json())
    del body["state_blocks"]
    older = ModelMetadata.from_json(json.dumps(body).encode())
    assert older.state_blocks == () and levers.described_blocks(older) == {}


@pytest.mark.parametrize("entry, says", [
    ({"lever": "x", "flag": 3, "since": 5, "set_signature": None, "fields": [{"name": "a", "length": 1,
                                                                               "per_unit": False}]}, "one bit"),
    ({"lever": "x", "flag": 32, "since": 0, "set_signature": None, "fields": [{"name": "a", "length": 1,
                                                                                "per_unit": False}]}, "since"),
    ({"lever": "x", "flag": 32, "since": 5, "set_signature": None, "fields": []}, "fields"),
    ({"lever": "x", "flag": 32, "since": 5, "set_signature": None, "fields": [{"name": "a", "length": -1,
                                                                               "per_unit": False}]}, "fields"),
    ("magnitudes", "objects with a lever name"),
])
def test_a_malformed_description_is_refused_naming_the_field(entry, says):
    body = json.loads(_metadata().to_json())
    body["state_blocks"] = [entry]
    with pytest.raises(FinePruneError, match=f"state_blocks.*expected.*{says}"):
        ModelMetadata.from_json(json.dumps(body).encode(), source="m.tflite")


def test_golden_states_decode_through_the_description_as_through_the_table():
    meta = _metadata()
    blob = (DATA / "state_v4_all.bin").read_bytes()
    through_description = codec.decode_model_state(blob, meta)
    through_table = codec.decode_state(blob, FP, UNITS, blocks=levers.block_shapes(meta))
    for field in dataclasses.fields(codec.State):
        a, b = getattr(through_description, field.name), getattr(through_table, field.name)
        assert (a == b).all() if field.name != "samples" else a == b
    assert codec.encode_state(FP, through_description) == blob


def test_the_description_sizes_the_blocks():
    """A model whose description gives other lengths than the table would: the file is judged by the model."""
    meta = _metadata()
    blob = (DATA / "state_v4_all.bin").read_bytes()
    shrunk = [dict(entry, fields=[dict(f, length=f["length"] + 1) for f in entry["fields"]])
              if entry["lever"] == "prior_correction" else entry for entry in meta.state_blocks]
    with pytest.raises(FinePruneError, match="truncated or padded"):
        codec.decode_model_state(blob, dataclasses.replace(meta, state_blocks=tuple(shrunk)))
    renamed = [dict(entry, fields=[dict(f, name="other") for f in entry["fields"]])
               if entry["lever"] == "magnitude_pruning" else entry for entry in meta.state_blocks]
    with pytest.raises(FinePruneError, match="knows it as"):
        codec.decode_model_state(blob, dataclasses.replace(meta, state_blocks=tuple(renamed)))


def test_the_kotlin_fixture_is_what_the_export_writes_for_the_golden_model():
    """android_demo/core's StateCodecTest decodes state_v4_all.bin through this description."""
    fixture = json.loads((DATA / "state_v4_all.layout.json").read_text())
    assert fixture == {"fingerprint": FP, "num_units": UNITS, "state_blocks": list(_metadata().state_blocks)}


def test_an_export_records_its_layout_and_its_states_load_through_it(exports, tmp_path):
    """A real export: the metadata's description is what the lever table says for it, and a saved state
    decodes through it exactly as through the table."""
    import numpy as np

    from tflite_fineprune import Personalizer

    personalizer = Personalizer(exports.path("plain_cnn", mean_compensation=True, prior_correction=True))
    meta = personalizer.metadata
    assert meta.state_blocks == levers.describe(meta)
    assert [entry["lever"] for entry in meta.state_blocks] == ["mean_compensation", "prior_correction",
                                                               "magnitude_pruning"]
    assert meta.state_blocks[1]["fields"][0]["length"] == meta.num_classes
    rng = np.random.default_rng(0)
    personalizer.observe(rng.random((8,) + tuple(meta.input_shape[1:]), np.float32))
    personalizer.prune(0.3)
    path = tmp_path / "user.state"
    personalizer.save_state(path)
    blob = path.read_bytes()
    through_description = codec.decode_model_state(blob, meta)
    through_table = codec.decode_state(blob, meta.fingerprint, meta.num_units, blocks=levers.block_shapes(meta))
    assert codec.encode_state(meta.fingerprint, through_description) == blob
    assert codec.encode_state(meta.fingerprint, through_table) == blob
    personalizer.reset()
    personalizer.load_state(path)
    assert codec.encode_state(meta.fingerprint, personalizer.get_state()) == blob
