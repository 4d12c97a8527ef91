"""The speech converter on the real MLPerf Tiny DS-CNN and Speech Commands clips."""

import numpy as np
import pytest

from tests import kws_reference
from tests.realdata import require, speech_test_split
from tflite_fineprune import FinePruneError, Personalizer

# Documented tolerance of the in-graph front-end against librosa (README, "Speech converter"):
# per clip, the relative L2 error of the 49x10 MFCC block is at most 0.5 %, and no coefficient is
# off by more than 0.05 (MFCCs span about ±60). Measured: 0.16 % and 0.012.
LIBROSA_RELATIVE = 5e-3
LIBROSA_ABSOLUTE = 0.05


@pytest.fixture(scope="module")
def clips():
    return speech_test_split(step=40)  # 123 clips over all 12 classes


@pytest.fixture(scope="module")
def kws(mlperf_kws):
    return mlperf_kws


def frontend(pcm):
    from tflite_fineprune.converters.frontend import MlperfMfcc

    return np.asarray(MlperfMfcc()(pcm))[..., 0]


def test_ds_cnn_import_reproduces_savedmodel(clips):
    from tflite_fineprune.converters.kws_model import load_mlperf_ds_cnn
    from tflite_fineprune.converters.speech import MLPERF_KWS

    saved = require(MLPERF_KWS)
    features = kws_reference.tf_signal_mfcc(clips[0])[..., None]
    keras_out = np.asarray(load_mlperf_ds_cnn(saved)(features))
    assert np.max(np.abs(keras_out - kws_reference.savedmodel_predict(saved, features))) <= 1e-4


def test_frontend_matches_training_pipeline(clips):
    ours, reference = frontend(clips[0]), kws_reference.tf_signal_mfcc(clips[0])
    assert ours.shape == (len(clips[0]), 49, 10)
    assert np.max(np.abs(ours - reference)) <= 1e-3


def test_framing_is_exactly_the_sample_index_table(clips):
    """Slices and reshapes frame the clip exactly as indexing it by frame_indices() (the GATHER it replaced)."""
    import tensorflow as tf

    from tflite_fineprune.converters.frontend import frame, frame_indices

    pcm = clips[0][:16]
    np.testing.assert_array_equal(np.asarray(frame(tf.constant(pcm))), pcm[:, frame_indices()])


def test_export_holds_no_frame_index_table(kws):
    """The framing costs no constant: no int32 constant over 4 KB (the frame index table was 94 KB; the largest
    int32 constant now is the typicality's segment ids, one per BatchNorm channel: 2.3 KB)."""
    from tflite_fineprune.tflite.schema import load_schema, read_model

    schema = load_schema()
    model = read_model(open(kws, "rb").read())
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            assert tensor.type != schema.TensorType.INT32 or data is None or len(data) <= 4096


def test_kws_export_runs_under_tflite_runtime_214(kws, clips, tmp_path):
    """The front-end's builtins (slices, RFFT2D, ...) and the compacted file run under tflite-runtime 2.14 too."""
    import os
    import subprocess

    from tests.test_backends import REPO, WORKER, runtime_python

    python = runtime_python()
    pcm = clips[0][:40]
    litert = Personalizer(kws, backend="litert")
    litert.save_state(tmp_path / "litert.state")
    np.savez(tmp_path / "inputs.npz", adapt=pcm[::2], eval=pcm[1::2], sparsity=0.3)
    result = subprocess.run([python, str(WORKER), str(kws), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"),
                             str(tmp_path / "litert.state"), str(tmp_path / "runtime.state")],
                            capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    other = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(other["dense"], litert.predict(pcm[1::2]), atol=1e-5)


def test_frontend_matches_librosa_within_documented_tolerance(clips):
    ours, reference = frontend(clips[0]), kws_reference.librosa_mfcc(clips[0])
    relative = np.linalg.norm(ours - reference, axis=(1, 2)) / np.linalg.norm(reference, axis=(1, 2))
    assert relative.max() <= LIBROSA_RELATIVE
    assert np.max(np.abs(ours - reference)) <= LIBROSA_ABSOLUTE


def test_exported_model_takes_raw_pcm(kws, clips):
    from tflite_fineprune.converters.speech import MLPERF_KWS

    pcm, words = clips
    personalizer = Personalizer(kws)
    assert personalizer.input_shape == (None, 16000)
    got = personalizer.predict(pcm)
    saved = require(MLPERF_KWS)
    # Same features into the SavedModel: the export is the SavedModel plus the front-end.
    assert np.max(np.abs(got - kws_reference.savedmodel_predict(saved, frontend(pcm)))) <= 1e-4
    # The training pipeline's own features give the same decisions.
    reference = kws_reference.savedmodel_predict(saved, kws_reference.tf_signal_mfcc(pcm))
    assert np.max(np.abs(got - reference)) <= 1e-3
    accuracy = np.mean(np.array(personalizer.labels)[got.argmax(1)] == np.array(words))
    assert accuracy >= 0.88  # full split: see benchmarks/kws_accuracy.py


def test_int16_pcm_and_silence(kws, clips):
    personalizer = Personalizer(kws)
    pcm = clips[0][:8]
    as_int16 = np.round(pcm * 32767).astype(np.int16)
    np.testing.assert_allclose(personalizer.predict(as_int16), personalizer.predict(pcm), atol=1e-4)
    silent = personalizer.predict(np.zeros((2, 16000), np.float32))
    assert np.all(np.isfinite(silent))
    with pytest.raises(FinePruneError, match="or int16"):
        personalizer.predict(as_int16.astype(np.int32))


def test_int8_export_keeps_the_frontend_exact(kws, clips, tmp_path):
    """Dynamic-range quantization must leave the front-end float: an int8 mel matmul once cost 12 points."""
    from tflite_fineprune.converters.frontend import FLOAT_WEIGHT_LIMIT, MlperfMfcc
    from tflite_fineprune.converters.speech import export_mlperf

    layer = MlperfMfcc()
    assert max(block.size for block in layer._mel_blocks) < FLOAT_WEIGHT_LIMIT
    path = tmp_path / "kws_int8.tflite"
    export_mlperf(path, quantize="int8")
    pcm, words = clips
    labels = np.array(Personalizer(kws).labels)
    float_accuracy = np.mean(labels[Personalizer(kws).predict(pcm).argmax(1)] == np.array(words))
    int8_accuracy = np.mean(labels[Personalizer(path).predict(pcm).argmax(1)] == np.array(words))
    assert int8_accuracy >= float_accuracy - 0.02


@pytest.mark.slow
def test_train_recipe_on_fsdd_folders(tmp_path):
    """`tflite_fineprune.converters.speech train` on DATA_DIR/<label>/*.wav (8 kHz FSDD clips, resampled)."""
    import os
    import subprocess
    import sys

    fsdd = require("fsdd/recordings")
    data = tmp_path / "data"
    for digit in ("0", "1"):
        (data / digit).mkdir(parents=True)
        for path in sorted(fsdd.glob(f"{digit}_jackson_*.wav"))[:12]:
            os.symlink(path, data / digit / path.name)
    out = tmp_path / "digits.tflite"
    result = subprocess.run([sys.executable, "-m", "tflite_fineprune.converters.speech", "train", str(data), "-o",
                             str(out),
                             "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    personalizer = Personalizer(out)
    assert personalizer.labels == ["0", "1"] and personalizer.metadata.sample_rate == 16000
    assert len(personalizer.metadata.hidden_groups) == 9  # stem, 4 depthwise and 4 pointwise layers (+ classes)
    (data / "1").rename(tmp_path / "moved")
    result = subprocess.run([sys.executable, "-m", "tflite_fineprune.converters.speech", "train", str(data), "-o",
                             str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "at least two <label>/ folders" in result.stderr
