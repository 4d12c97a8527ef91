"""`slim --quantize int8`: dynamic-range int8 weights written by rewriting the slim flatbuffer, no TensorFlow.

Real models on real data: a Fashion-MNIST CNN (Conv2D + DepthwiseConv2D +
Dense, trained briefly here), a Fashion MLP, the MLPerf DS-CNN with its MFCC
front-end. The int8 slim file must be smaller than the float slim file, agree
with it, quantize what the TFLite converter quantizes, run under
tflite-runtime 2.14 and refuse what it cannot do.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.realdata import speech_test_split
from tests.cli import error_lines, run_cli
from tests.test_slim import BLOCK_TENSORFLOW
from tflite_fineprune import FinePruneError, Personalizer
from tflite_fineprune.metadata import read_model_metadata
from tflite_fineprune.tflite.schema import read_model
from tflite_fineprune.tflite.weight_quantization import DYNAMIC_RANGE, MIN_ELEMENTS, WEIGHT_OPS

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION = "/usr/share/datasets/fashion-mnist"
TFLITE_RUNTIME = "/work/main/.venv-tflite214/bin/python"
FLOAT32, INT8 = 0, 9
MIN_AGREEMENT = 0.98


def require_fashion():
    from tflite_fineprune.converters.fashion import find_fashion_mnist

    try:
        find_fashion_mnist(os.environ.get("FASHION_MNIST") or FASHION)
    except FinePruneError:
        pytest.skip("Fashion-MNIST is absent (apt-get install dataset-fashion-mnist; .ci/run does)")


def fashion_cnn():
    """uint8 28x28 → Conv2D → Conv2D+BN → DepthwiseConv2D on 192 channels (1728 weights) → Dense."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    pixels = keras.Input((28, 28), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 255.0)(pixels)
    x = layers.Reshape((28, 28, 1))(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv_a")(x)
    x = layers.Conv2D(192, 3, strides=2, use_bias=False, name="conv_b")(x)
    x = layers.BatchNormalization(name="bn_b")(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(64, activation="relu", name="hidden")(x)
    return keras.Model(pixels, layers.Dense(10, name="classes")(x), name="fashion_cnn")


@pytest.fixture(scope="module")
def fashion():
    """(train images, train labels, test images) of Fashion-MNIST."""
    require_fashion()
    from tflite_fineprune.converters.fashion import load_fashion_mnist

    x, y = load_fashion_mnist("train")
    return x[:6000], y[:6000], load_fashion_mnist("test")[0]


@pytest.fixture(scope="module")
def cnn_model(fashion):
    import keras

    model = fashion_cnn()
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(fashion[0], fashion[1], batch_size=128, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def cnn_export(cnn_model, tmp_path_factory):
    from tflite_fineprune import export_model

    path = tmp_path_factory.mktemp("cnn") / "cnn.tflite"
    export_model(cnn_model, path, verify=False)
    return path


@pytest.fixture(scope="module")
def cnn_int8_export(cnn_model, tmp_path_factory):
    """The converter's int8 file of the same model (`export_model(quantize="int8")`)."""
    from tflite_fineprune import export_model

    path = tmp_path_factory.mktemp("cnn-int8") / "cnn-int8.tflite"
    export_model(cnn_model, path, quantize="int8", verify=False)
    return path


@pytest.fixture(scope="module")
def mlp_export(fashion, tmp_path_factory):
    from tflite_fineprune.converters.fashion import train_fashion_mlp
    from tflite_fineprune import export_model

    model, _ = train_fashion_mlp(epochs=1, hidden=(256, 128), limit=6000, verbose=0)
    path = tmp_path_factory.mktemp("mlp") / "mlp.tflite"
    export_model(model, path, verify=False)
    return path


# -- helpers -----------------------------------------------------------------------


def tensor_types(path):
    """{(op position, op name): (type, shape, scales)} of the weights of every CONV_2D / DEPTHWISE_CONV_2D /
    FULLY_CONNECTED in the file's only subgraph (exports carry no tensor names: tflite/compaction.py)."""
    from tflite_fineprune.tflite.graph import Graph
    from tflite_fineprune.tflite.schema import load_schema

    model = read_model(pathlib.Path(path).read_bytes())
    assert len(model.subgraphs) == 1
    graph = Graph(load_schema(), model, 0)
    found = {}
    for i, (name, op) in enumerate(zip(graph.names, graph.ops)):
        if name in WEIGHT_OPS:
            t = graph.sub.tensors[op.inputs[1]]
            q = t.quantization
            scales = np.asarray(q.scale) if q is not None and q.scale is not None else None
            found[(i, name)] = (t.type, tuple(int(d) for d in t.shape), scales)
    return found


def weight_operands(path):
    """[(op name, weight tensor type, element count)] of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    from tflite_fineprune.tflite.graph import Graph
    from tflite_fineprune.tflite.schema import load_schema

    schema = load_schema()
    graph = Graph(schema, read_model(pathlib.Path(path).read_bytes()), 0)
    return [(name, graph.sub.tensors[op.inputs[1]].type, int(np.prod(graph.shape(op.inputs[1]))))
            for name, op in zip(graph.names, graph.ops) if name in WEIGHT_OPS]


def personalize_and_slim(path, adapt, sparsity, tmp_path):
    """(personalizer, float slim report, int8 slim report) for a user who saw `adapt` and pruned `sparsity`."""
    p = Personalizer(path, backend="litert")
    p.observe(adapt)
    p.prune(sparsity)
    float_report = p.slim(tmp_path / f"float-{sparsity}.tflite")
    int8_report = p.slim(tmp_path / f"int8-{sparsity}.tflite", quantize="int8")
    return p, float_report, int8_report


def compare(float_report, int8_report, evaluation, what):
    """The int8 slim file is smaller than the float one and agrees with it on `evaluation`."""
    reference = Personalizer(float_report.path).predict(evaluation)
    quantized = Personalizer(int8_report.path).predict(evaluation)
    agreement = float(np.mean(reference.argmax(1) == quantized.argmax(1)))
    error = float(np.max(np.abs(reference - quantized)))
    ratio = int8_report.slim_bytes / float_report.slim_bytes
    print(f"\n{what}: int8 slim {int8_report.slim_bytes:,} B / float slim {float_report.slim_bytes:,} B = {ratio:.3f}; "
          f"argmax agreement {agreement:.2%} on {len(evaluation)} real inputs; max |int8 - float| {error:.4f} "
          f"(outputs up to {np.max(np.abs(reference)):.2f})")
    assert ratio < 1.0
    assert agreement >= MIN_AGREEMENT, f"{what}: argmax agreement {agreement:.2%}"
    assert error < 0.1 * np.max(np.abs(reference))
    return quantized


def check_int8_file(report, export_path):
    """Metadata records the quantization and stays sealed; large weights are int8, the rest float."""
    data = pathlib.Path(report.path).read_bytes()
    meta = read_model_metadata(data)  # verifies the SHA-256 seal
    assert meta.content_sha256 and meta.quantization == DYNAMIC_RANGE == report.quantization
    assert meta.slim and meta.slim["from_fingerprint"] == read_model_metadata(export_path.read_bytes()).fingerprint
    operands = weight_operands(report.path)
    for name, tensor_type, size in operands:
        assert tensor_type == (INT8 if size >= MIN_ELEMENTS else FLOAT32), (name, tensor_type, size)
    assert len(report.quantized_tensors) == sum(t == INT8 for _, t, _ in operands) > 0


def run_under_tflite_runtime(path, x, tmp_path):
    python = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON") or TFLITE_RUNTIME
    if not os.path.exists(python):
        pytest.skip(f"no tflite-runtime 2.14 venv ({python}; .ci/run creates it)")
    np.save(tmp_path / "x.npy", x)
    script = f"""
import sys, numpy as np
from tflite_fineprune import Personalizer
p = Personalizer({str(path)!r}, backend="tflite_runtime")
assert p.backend == "tflite_runtime" and "tensorflow" not in sys.modules
np.save({str(tmp_path / 'y.npy')!r}, p.predict(np.load({str(tmp_path / 'x.npy')!r})))
"""
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "y.npy")


# -- real models -------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.3, 0.5])
def test_conv_depthwise_dense_model(cnn_export, fashion, tmp_path, sparsity):
    test_images = fashion[2]
    p, float_report, int8_report = personalize_and_slim(cnn_export, test_images[:300], sparsity, tmp_path)
    evaluation = test_images[1000:2000]
    quantized = compare(float_report, int8_report, evaluation, f"fashion CNN at {sparsity:.0%}")
    check_int8_file(int8_report, cnn_export)
    if sparsity == 0.3:
        on_runtime = run_under_tflite_runtime(int8_report.path, evaluation[:200], tmp_path)
        np.testing.assert_array_equal(on_runtime.argmax(1), quantized[:200].argmax(1))
        assert np.max(np.abs(on_runtime - quantized[:200])) < 0.01 * np.max(np.abs(quantized))


def test_same_int8_tensors_as_the_converter(cnn_export, cnn_int8_export, fashion, tmp_path):
    """Slim's int8 at sparsity 0 vs the converter's (export_model(quantize="int8")): the same tensors int8.

    Convolutions: the same per-channel scales. Fully connected: one scale, the
    largest of the converter's per-unit ones (tflite-runtime 2.14 cannot run
    per-unit ones: tflite/weight_quantization.py).
    """
    int8_export = cnn_int8_export
    x = fashion[2][:200]
    ours = Personalizer(cnn_export)
    ours.observe(x)
    ours.slim(tmp_path / "ours.tflite", quantize="int8")
    converter = Personalizer(int8_export)
    converter.observe(x)
    report = converter.slim(tmp_path / "converter.tflite")  # an int8 export's slim file: int8 already
    assert report.quantization == DYNAMIC_RANGE and report.quantized_tensors == ()
    mine, theirs = tensor_types(tmp_path / "ours.tflite"), tensor_types(tmp_path / "converter.tflite")
    int8_mine = {n for n, v in mine.items() if v[0] == INT8}
    assert int8_mine == {n for n, v in theirs.items() if v[0] == INT8} and len(int8_mine) == 3
    for name in int8_mine:
        assert mine[name][1] == theirs[name][1]
        expected = theirs[name][2] if name[1] != "FULLY_CONNECTED" else [np.max(theirs[name][2])]
        np.testing.assert_allclose(mine[name][2], expected, rtol=1e-5, err_msg=name)
    assert {name for name, t, _ in weight_operands(tmp_path / "ours.tflite") if t == INT8} == set(WEIGHT_OPS)
    sizes = [os.path.getsize(tmp_path / f) for f in ("ours.tflite", "converter.tflite")]
    assert abs(sizes[0] - sizes[1]) < 1000, sizes  # the converter's 64 FC scales are the difference
    outputs = Personalizer(tmp_path / "ours.tflite").predict(x)
    reference = Personalizer(tmp_path / "converter.tflite").predict(x)
    assert np.mean(outputs.argmax(1) == reference.argmax(1)) >= MIN_AGREEMENT
    assert np.max(np.abs(outputs - reference)) < 0.02 * np.max(np.abs(reference))
    # the three hybrid kernels (conv, depthwise, fully connected) as tflite-runtime 2.14 runs them
    on_runtime = run_under_tflite_runtime(tmp_path / "ours.tflite", x, tmp_path)
    np.testing.assert_array_equal(on_runtime.argmax(1), outputs.argmax(1))
    assert np.max(np.abs(on_runtime - outputs)) < 0.01 * np.max(np.abs(outputs))


def test_int8_export_slims_like_a_float_one(cnn_int8_export, fashion, tmp_path):
    """An int8 export's pruned channels are cut from its int8 weights, scales kept; outputs follow the masked file."""
    int8_export = cnn_int8_export
    x = fashion[2]
    p = Personalizer(int8_export)
    p.observe(x[:300])
    p.prune(0.3)
    for quantize in (None, "int8"):
        report = p.slim(tmp_path / f"slim-{quantize}.tflite", quantize=quantize)
        assert report.quantization == DYNAMIC_RANGE and report.quantized_tensors == ()
        assert report.slim_bytes < 0.7 * report.dense_bytes
        masked, slim = p.predict(x[1000:1500]), Personalizer(report.path).predict(x[1000:1500])
        assert np.mean(masked.argmax(1) == slim.argmax(1)) >= MIN_AGREEMENT
        assert np.max(np.abs(masked - slim)) < 0.02 * np.max(np.abs(masked))
    types = tensor_types(tmp_path / "slim-int8.tflite")
    assert {t for t, _, _ in types.values()} >= {INT8}
    for name, (t, shape, scales) in types.items():
        if t == INT8:  # the converter's per-channel scales, one per kept output channel (one per dense kernel)
            expected = {"FULLY_CONNECTED": 1, "DEPTHWISE_CONV_2D": shape[-1]}.get(name[1], shape[0])
            assert len(scales) == expected, name


def test_fashion_mlp(mlp_export, fashion, tmp_path):
    test_images = fashion[2]
    p, float_report, int8_report = personalize_and_slim(mlp_export, test_images[:300], 0.5, tmp_path)
    compare(float_report, int8_report, test_images[1000:3000], "fashion MLP at 50%")
    check_int8_file(int8_report, mlp_export)
    assert int8_report.slim_bytes < 0.4 * float_report.slim_bytes  # the weights are nearly all of an MLP


def test_mlperf_ds_cnn_keeps_its_frontend_float(mlperf_kws, tmp_path):
    clips, _ = speech_test_split(step=5)  # 978 clips of all 12 classes
    p, float_report, int8_report = personalize_and_slim(mlperf_kws, clips[::4], 0.3, tmp_path)
    evaluation = np.delete(clips, np.s_[::4], axis=0)
    quantized = compare(float_report, int8_report, evaluation, "MLPerf DS-CNN at 30%")
    check_int8_file(int8_report, mlperf_kws)
    assert float_report.still_masked == {} == int8_report.still_masked  # the pruned units are gone
    # The front-end's mel blocks and DCT (FULLY_CONNECTED weights under 1024 elements) stay float.
    small = [t for t, shape, _ in tensor_types(int8_report.path).values() if np.prod(shape) < 1024]
    assert small and all(t != INT8 for t in small)
    on_runtime = run_under_tflite_runtime(int8_report.path, evaluation[:100], tmp_path)
    assert np.mean(on_runtime.argmax(1) == quantized[:100].argmax(1)) >= MIN_AGREEMENT


# -- without TensorFlow, CLI, errors -------------------------------------------------------


def test_runs_without_tensorflow(mlp_export, fashion, tmp_path):
    p = Personalizer(mlp_export)
    p.observe(fashion[2][:100])
    p.prune(0.5)
    p.save_state(tmp_path / "user.state")
    script = BLOCK_TENSORFLOW + f"""
from tflite_fineprune.slim import slim_model
report = slim_model({str(mlp_export)!r}, {str(tmp_path / 'user.state')!r}, {str(tmp_path / 'user.tflite')!r},
                    quantize="int8")
assert "tensorflow" not in sys.modules and not any(m.startswith("tensorflow.") for m in sys.modules)
print("ok", report.quantization, len(report.quantized_tensors))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {DYNAMIC_RANGE} 2" in result.stdout  # 784x128, 128x64; the 64x10 classes stay float


def cli(*args):
    return run_cli(*args, timeout=300)


def test_cli_round_trip_and_errors(mlp_export, fashion, tmp_path):
    x = fashion[2]
    p = Personalizer(mlp_export)
    p.observe(x[:100])
    p.prune(0.5)
    p.save_state(tmp_path / "user.state")
    result = cli("slim", mlp_export, "--state", tmp_path / "user.state", "-o", tmp_path / "user.tflite",
                 "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    assert DYNAMIC_RANGE in result.stdout and "bytes" in result.stdout
    result = cli("inspect", tmp_path / "user.tflite")
    assert result.returncode == 0 and f"quantization: {DYNAMIC_RANGE}" in result.stdout
    assert "slim: pruned units removed" in result.stdout
    python_api = p.slim(tmp_path / "api.tflite", quantize="int8")
    assert (tmp_path / "user.tflite").read_bytes() == pathlib.Path(python_api.path).read_bytes()
    # Nothing left to quantize: one unit per layer leaves every weight tensor under 1024 elements.
    p.prune(0.999)
    p.save_state(tmp_path / "tiny.state")
    result = cli("slim", mlp_export, "--state", tmp_path / "tiny.state", "-o", tmp_path / "tiny.tflite",
                 "--quantize", "int8")
    assert result.returncode == 2 and len(error_lines(result.stderr)) == 1
    assert "fewer than 1024 elements" in result.stderr and not (tmp_path / "tiny.tflite").exists()
    result = cli("slim", mlp_export, "--state", tmp_path / "user.state", "-o", tmp_path / "x.tflite",
                 "--quantize", "int4")
    assert result.returncode == 2 and "int4" in result.stderr and not (tmp_path / "x.tflite").exists()


def test_python_errors(mlp_export, fashion, tmp_path):
    p = Personalizer(mlp_export)
    p.observe(fashion[2][:50])
    p.prune(0.999)
    with pytest.raises(FinePruneError, match="cannot quantize .* fewer than 1024 elements"):
        p.slim(tmp_path / "tiny.tflite", quantize="int8")
    assert not (tmp_path / "tiny.tflite").exists()
    p.slim(tmp_path / "tiny-float.tflite")  # the same state slims fine in float
    with pytest.raises(FinePruneError, match="unknown quantize 'float16'"):
        p.slim(tmp_path / "f16.tflite", quantize="float16")
    assert not (tmp_path / "f16.tflite").exists()


def test_method_name_matches_the_exporter():
    from tflite_fineprune.export.quantize import DYNAMIC_RANGE as EXPORTED

    assert DYNAMIC_RANGE == EXPORTED
