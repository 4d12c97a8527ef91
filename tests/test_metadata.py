"""The embedded metadata: readable by the pure-Python reader and by TFLite's own schema."""

import importlib

import keras
import numpy as np

from tests import zoo
from tflite_fineprune import Personalizer, export_model, read_model_metadata
from tflite_fineprune.metadata import METADATA_NAME, ModelMetadata


def test_reader_agrees_with_tflite_schema(exports):
    blob = exports.path("residual_separable").read_bytes()
    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")
    model = schema.Model.GetRootAsModel(blob, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        entries[meta.Name().decode()] = model.Buffers(meta.Buffer()).DataAsNumpy().tobytes()
    ours = read_model_metadata(blob)
    assert ModelMetadata.from_json(entries[METADATA_NAME]) == ours
    assert ours.to_json() == entries[METADATA_NAME]


def test_metadata_describes_the_model(exports):
    p = Personalizer(exports.path("plain_cnn"))
    meta = p.metadata
    assert meta.input_shape == (None, 32, 32, 3) and meta.input_dtype == "float32"
    assert meta.num_classes == 10 and meta.output_kind == "logits"
    assert set(meta.signatures) >= {"infer", "collect", "prune", "reset", "get_state", "set_state"}
    assert [(g.offset, g.units) for g in meta.groups] == [(0, 16), (16, 24), (40, 32)]
    assert meta.groups[0].positions == 32 * 32
    assert set(p._interpreter.get_signature_list()) == set(meta.signatures)
    for name, runner_io in p._interpreter.get_signature_list().items():
        assert runner_io["inputs"], f"signature {name} has no input (Java runSignature needs one)"


def test_fingerprint_follows_weights(tmp_path):
    model = zoo.dense_only()
    a = export_model(model, tmp_path / "a.tflite", verify=False).metadata.fingerprint
    b = export_model(model, tmp_path / "b.tflite", verify=False).metadata.fingerprint
    layer = model.get_layer("hidden_2")
    layer.bias.assign(np.asarray(layer.bias) + 1.0)
    c = export_model(model, tmp_path / "c.tflite", verify=False).metadata.fingerprint
    assert a == b != c


def test_labels_are_embedded(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2)])
    report = export_model(model, tmp_path / "m.tflite", labels=["cat", "dog"])
    assert Personalizer(report.path).labels == ["cat", "dog"]
