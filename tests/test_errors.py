"""Every kind of bad input gets a clear `FinePruneError`, never a crash or a wrong answer."""


import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import layers

from tests.cli import error_lines, run_cli
from tests.synthetic import synthetic_inputs
from tflite_fineprune import FinePruneError, Personalizer, export_model, read_model_metadata


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
