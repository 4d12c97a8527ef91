"""Every kind of bad input gets a clear `FinePruneError`, never a crash or a wrong answer."""


import dataclasses

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import layers

from tests.cli import error_lines, run_cli
from tests.synthetic import synthetic_inputs
from tflite_fineprune import (FinePruneError, InputError, ModelError, Personalizer, SlimError, StateError, export_model,
                              read_model_metadata)


@pytest.fixture(scope="module")
def plain_tflite(tmp_path_factory):
    """A valid TFLite model that is not a tflite-fineprune export."""
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    path = tmp_path_factory.mktemp("plain") / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture
def personalizer(exports):
    return Personalizer(exports.path("plain_cnn"))


# -- model files -------------------------------------------------------------

def test_foreign_tflite(plain_tflite):
    with pytest.raises(FinePruneError, match="not a tflite-fineprune export"):
        Personalizer(plain_tflite)


@pytest.mark.parametrize("content", [b"", b"TFL3", b"hello world, not a model", bytes(range(256)) * 40])
def test_not_a_tflite_file(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(FinePruneError, match="not a (valid )?TFLite file"):
        Personalizer(path)


def test_truncated_model(exports, tmp_path):
    blob = exports.path("plain_cnn").read_bytes()
    for fraction in (0.1, 0.5, 0.9, 0.999):
        path = tmp_path / f"cut{fraction}.tflite"
        path.write_bytes(blob[:int(len(blob) * fraction)])
        with pytest.raises(FinePruneError):
            Personalizer(path)


def test_missing_or_directory_model(tmp_path):
    with pytest.raises(FinePruneError, match="does not exist"):
        Personalizer(tmp_path / "missing.tflite")
    with pytest.raises(FinePruneError, match="directory"):
        Personalizer(tmp_path)


def test_unknown_backend(exports):
    with pytest.raises(FinePruneError, match="unknown backend"):
        Personalizer(exports.path("plain_cnn"), backend="coreml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_metadata_reader_survives_corruption(exports, data):
    """Random truncation and byte edits: the reader returns metadata or raises FinePruneError."""
    blob = bytearray(exports.path("dense_only").read_bytes())
    cut = data.draw(st.integers(0, len(blob)))
    blob = blob[:cut]
    for _ in range(data.draw(st.integers(0, 8))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        read_model_metadata(bytes(blob))
    except FinePruneError:
        pass


# -- inputs ------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((2, 32, 32), np.float32), "rank 3"),
    (lambda: np.zeros((32, 32, 3), np.float32), "single sample"),
    (lambda: np.zeros((2, 28, 28, 3), np.float32), r"shape \(2, 28, 28, 3\)"),
    (lambda: np.zeros((2, 32, 32, 3), np.int64), "dtype int64"),
    (lambda: np.zeros((2, 32, 32, 3), bool), "dtype bool"),
    (lambda: np.zeros((0, 32, 32, 3), np.float32), "empty"),
    (lambda: np.full((2, 32, 32, 3), np.nan, np.float32), "NaN"),
    (lambda: np.full((2, 32, 32, 3), np.inf), "infinite"),
    (lambda: [], "empty|rank"),
    (lambda: iter([]), "no data"),
    (lambda: "images/", "path"),
    (lambda: [np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 8), np.float32)], "batch 1"),
])
def test_bad_inputs(personalizer, make, message):
    before = personalizer.get_state()
    for method in (personalizer.predict, personalizer.observe):
        with pytest.raises(FinePruneError, match=message):
            method(make())
    assert personalizer.get_state().samples == before.samples


def test_float64_and_batches_are_accepted(personalizer, exports):
    x = synthetic_inputs("plain_cnn", 24)
    a = personalizer.predict(x.astype(np.float64))
    b = personalizer.predict(iter([x[:5], x[5:]]))
    c = personalizer.predict(list(x))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "half", None])
def test_bad_sparsity(personalizer, value):
    personalizer.observe(synthetic_inputs("plain_cnn", 24))
    with pytest.raises(FinePruneError, match="sparsity"):
        personalizer.prune(value)


def test_prune_before_observe(personalizer):
    personalizer.reset()
    with pytest.raises(FinePruneError, match="observe"):
        personalizer.prune(0.5)


def test_prune_outputs_needs_export_option(personalizer):
    personalizer.observe(synthetic_inputs("plain_cnn", 24))
    with pytest.raises(FinePruneError, match="without output"):
        personalizer.prune_outputs(0.1)


# -- export ------------------------------------------------------------------

def test_unsupported_layer_is_named(tmp_path):
    model = keras.Sequential([keras.Input((10, 4)), layers.LSTM(8), layers.Dense(3)])
    with pytest.raises(FinePruneError, match=r"'lstm.*' \(LSTM\) is not supported.*supported layers: .*Conv2D"):
        export_model(model, tmp_path / "x.tflite")


def test_export_rejects_bad_models(tmp_path):
    inp = keras.Input((8,))
    two_out = keras.Model(inp, [layers.Dense(2)(inp), layers.Dense(3)(inp)])
    with pytest.raises(FinePruneError, match="one input and one output"):
        export_model(two_out, tmp_path / "a.tflite")
    with pytest.raises(FinePruneError, match="not built"):
        export_model(keras.Sequential([layers.Dense(3)]), tmp_path / "b.tflite")
    ok = keras.Sequential([keras.Input((8,)), layers.Dense(6, activation="relu"), layers.Dense(3)])
    with pytest.raises(FinePruneError, match="3 outputs"):
        export_model(ok, tmp_path / "c.tflite", labels=["a", "b"])
    with pytest.raises(FinePruneError, match="unknown policy"):
        export_model(ok, tmp_path / "d.tflite", policy="random")
    no_units = keras.Sequential([keras.Input((8,)), layers.Dense(3)])
    with pytest.raises(FinePruneError, match="no prunable units"):
        export_model(no_units, tmp_path / "e.tflite", prune_outputs=False)  # classes alone are prunable by default
    with pytest.raises(FinePruneError, match="does not exist"):
        export_model(str(tmp_path / "missing.keras"), tmp_path / "f.tflite")
    assert not list(tmp_path.glob("*.tflite"))


def test_unknown_spatial_size_needs_input_shape(tmp_path):
    model = keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(2)])
    with pytest.raises(FinePruneError, match="input_shape"):
        export_model(model, tmp_path / "a.tflite")
    report = export_model(model, tmp_path / "b.tflite", input_shape=(16, 16, 3))
    assert Personalizer(report.path).input_shape == (None, 16, 16, 3)


# -- command line ------------------------------------------------------------

def test_cli_errors_are_one_line(plain_tflite, tmp_path, exports):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", np.zeros((2, 32, 32, 3), np.float32))
    (tmp_path / "junk.tflite").write_bytes(b"junk" * 100)
    cases = [
        ("inspect", plain_tflite),
        ("inspect", tmp_path / "junk.tflite"),
        ("personalize", exports.path("plain_cnn"), "--data", tmp_path / "nodata", "--sparsity", 0.5,
         "--state", tmp_path / "s.state"),
        ("personalize", exports.path("plain_cnn"), "--data", tmp_path / "data", "--sparsity", 1.5,
         "--state", tmp_path / "s.state"),
        ("evaluate", exports.path("plain_cnn"), "--data", tmp_path / "data"),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith("tflite-fineprune: error:"), result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.state").exists()


# -- kinds: a caller tells a bad model, state, input and slim apart ------------

SUBCLASSES = (ModelError, StateError, InputError, SlimError)


def test_model_files_raise_model_error(plain_tflite, exports, tmp_path):
    with pytest.raises(ModelError, match="not a tflite-fineprune export"):
        Personalizer(plain_tflite)
    blob = exports.path("plain_cnn").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(blob[:len(blob) // 2])
    (tmp_path / "junk.tflite").write_bytes(b"junk" * 100)
    damaged = bytearray(blob)
    damaged[len(damaged) // 3] ^= 0xFF  # one byte edited: the recorded SHA-256 no longer matches
    (tmp_path / "edited.tflite").write_bytes(bytes(damaged))
    for name in ("cut", "junk", "edited", "missing"):
        with pytest.raises(ModelError):
            Personalizer(tmp_path / f"{name}.tflite")
    with pytest.raises(ModelError, match="not a TFLite file"):
        read_model_metadata(b"hello world, not a model")


def test_state_files_raise_state_error(personalizer, exports, tmp_path):
    personalizer.observe(synthetic_inputs("plain_cnn", 24))
    personalizer.prune(0.3)
    personalizer.save_state(tmp_path / "user.state")
    before = personalizer.get_state()
    blob = (tmp_path / "user.state").read_bytes()
    (tmp_path / "cut.state").write_bytes(blob[:len(blob) - 7])
    (tmp_path / "junk.state").write_bytes(b"not a state file at all" * 4)
    other = Personalizer(exports.path("dense_only"))
    other.save_state(tmp_path / "other.state")
    for name, message in (("cut", "truncated"), ("junk", "not a tflite-fineprune state file"),
                          ("other", "belongs to"), ("missing", "does not exist")):
        with pytest.raises(StateError, match=message):
            personalizer.load_state(tmp_path / f"{name}.state")
    wrong = dataclasses.replace(before, masks=before.masks[:-1])
    broken = dataclasses.replace(before, counts=np.full_like(before.counts, np.nan))
    for state in (wrong, broken, "user.state"):
        with pytest.raises(StateError):
            personalizer.set_state(state)
    np.testing.assert_array_equal(personalizer.get_state().masks, before.masks)


def test_batches_raise_input_error(personalizer):
    for batch, message in ((np.zeros((2, 28, 28, 3), np.float32), "shape"),
                           (np.full((2, 32, 32, 3), np.nan, np.float32), "NaN"),
                           (np.zeros((0, 32, 32, 3), np.float32), "empty"),
                           (iter([]), "no data")):
        for method in (personalizer.predict, personalizer.observe):
            with pytest.raises(InputError, match=message):
                method(batch)


def test_broken_files_in_a_data_folder_raise_input_error(tmp_path):
    from tflite_fineprune.datafiles import load_samples
    from tflite_fineprune.folderdata import load_folder

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 10)
    with pytest.raises(InputError):
        load_samples(str(tmp_path / "cat" / "broken.png"), (32, 32, 3))
    with pytest.raises(InputError, match="could be read"):
        load_folder(tmp_path, (32, 32, 3))
    with pytest.raises(InputError, match="does not exist"):
        load_folder(tmp_path / "nowhere", (32, 32, 3))


def test_what_slim_cannot_rewrite_raises_slim_error(tmp_path):
    from tflite_fineprune import slim_model

    small = keras.Sequential([keras.Input((8,)), layers.Dense(6, activation="relu"), layers.Dense(3)])
    model = export_model(small, tmp_path / "small.tflite").path
    p = Personalizer(model)
    p.observe(np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32))
    p.prune(0.5)
    p.save_state(tmp_path / "small.state")
    out = tmp_path / "out"
    out.mkdir()
    # Every weight tensor is under 1024 elements: dynamic-range int8 has nothing to quantize.
    with pytest.raises(SlimError, match="fewer than 1024 elements"):
        slim_model(model, tmp_path / "small.state", out / "slim.tflite", quantize="int8")
    with pytest.raises(StateError, match="does not exist"):
        slim_model(model, tmp_path / "missing.state", out / "slim.tflite")
    with pytest.raises(ModelError, match="already slim"):
        slim_model(slim_model(model, tmp_path / "small.state", out / "slim.tflite").path, tmp_path / "small.state",
                   out / "again.tflite")
    assert [f.name for f in out.iterdir()] == ["slim.tflite"]


@pytest.mark.parametrize("value", [1.5, -0.1, "half"])
def test_settings_raise_the_base_type_only(personalizer, value):
    personalizer.observe(synthetic_inputs("plain_cnn", 24))
    with pytest.raises(FinePruneError, match="sparsity") as caught:
        personalizer.prune(value)
    assert not isinstance(caught.value, SUBCLASSES)
    with pytest.raises(FinePruneError, match="unknown backend") as caught:
        Personalizer(personalizer.model_path, backend="coreml")
    assert not isinstance(caught.value, SUBCLASSES)
