"""The `tflite-fineprune` command end to end on real CIFAR-10 images."""

import os
import subprocess
import sys

import numpy as np

from tests.cli import cli_output, run_cli
from tests.realdata import CIFAR_CLASSES, cifar_files
from tflite_fineprune import Personalizer


def link_images(root, classes, per_class, start=0, flat=False):
    for name in classes:
        folder = root if flat else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in cifar_files(per_class, (name,), start):
            os.symlink(path, folder / f"{name}_{path.name}")
    return root


def test_export_inspect_personalize_evaluate(exports, tmp_path):
    keras_path = tmp_path / "cnn.keras"
    exports.model("plain_cnn").save(keras_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CIFAR_CLASSES) + "\n")
    model = tmp_path / "cnn.tflite"

    out = cli_output("export", keras_path, "-o", model, "--labels", labels, "--no-prune-outputs")
    assert "unit groups" in out and model.exists()

    out = cli_output("inspect", model)
    assert "conv_b" in out and "airplane" in out and "weights/unit" in out
    assert "3 groups, 72 units" in out

    user = link_images(tmp_path / "user", ("cat", "dog"), 20, flat=True)
    state = tmp_path / "user.state"
    out = cli_output("personalize", model, "--data", user, "--sparsity", 0.25, "--state", state)
    assert "observed 40 samples from 40 files" in out and state.exists()
    personalizer = Personalizer(model)
    personalizer.load_state(state)
    assert personalizer.samples == 40
    assert personalizer.sparsity().pruned_units == sum(round(0.25 * g.units) for g in personalizer.groups)

    # A second run starts from the dense model on this data and replaces the state (and says so).
    out = cli_output("personalize", model, "--data", user, "--sparsity", 0.25, "--state", state)
    assert "note: replacing" in out and "(40 samples observed before)" in out
    personalizer.load_state(state)
    assert personalizer.samples == 40

    test = link_images(tmp_path / "test", ("cat", "dog", "ship"), 5, start=500)
    dense = cli_output("evaluate", model, "--data", test)
    pruned = cli_output("evaluate", model, "--data", test, "--state", state)
    assert dense.startswith("accuracy") and "on 15 samples" in dense
    assert "unit sparsity 0.0%" in dense and "unit sparsity 0.0%" not in pruned


def test_npy_folders_and_preprocess_hook(exports, tmp_path):
    model = exports.path("dense_only")
    data = tmp_path / "data" / "3"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(data / "batch.npy", rng.uniform(0, 255, (6, 32, 32, 3)).astype(np.float32))
    np.save(data / "one.npy", rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    out = cli_output("evaluate", model, "--data", tmp_path / "data")
    assert "on 7 samples" in out
    hook = tmp_path / "myhook.py"
    hook.write_text("def half(raw, path):\n    return raw * 0.5\n")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_path}"
    try:
        out = cli_output("personalize", model, "--data", tmp_path / "data", "--sparsity", 0.1,
                      "--state", tmp_path / "s.state", "--preprocess", "myhook:half")
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert "observed 7 samples" in out


def test_quickstart_main_job(tmp_path):
    """The README's main command runs end to end on the real ResNet-8 and CIFAR-10 photos."""
    from tests.realdata import require

    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    script = os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.py")
    result = subprocess.run([sys.executable, script, "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line[:30].strip(): line[30:].split() for line in result.stdout.splitlines() if line[:1].isalpha()}
    dense = float(rows["dense model"][0])
    assert 0.3 < dense < 0.9  # ResNet-8 on cat/dog JPEGs, 10-way predictions
    assert rows["prune unseen classes"][1] != "0.0%"
    assert (tmp_path / "resnet8.tflite").exists()


def test_wav_folders(exports, tmp_path):
    """Real Speech Commands clips through the CLI; FSDD clips of other lengths are refused clearly."""
    from tests.realdata import require

    speech = require("speech_commands_v0.02_test")
    model = exports.path("conv1d_audio")
    user = tmp_path / "user"
    user.mkdir()
    clips = [p for p in sorted((speech / "yes").glob("*.wav"))[:40] if p.stat().st_size == 32044][:6]
    for path in clips:
        os.symlink(path, user / path.name)
    out = cli_output("personalize", model, "--data", user, "--sparsity", 0.2, "--state", tmp_path / "s.state")
    assert f"observed {len(clips)} samples" in out

    fsdd = require("fsdd/recordings")
    odd = tmp_path / "odd"
    odd.mkdir()
    os.symlink(sorted(fsdd.glob("*.wav"))[0], odd / "digit.wav")
    result = run_cli("personalize", model, "--data", odd, "--sparsity", "0.2", "--state", tmp_path / "t.state",
                     timeout=300)
    assert result.returncode == 2 and "samples; the model takes 16000" in result.stderr
    (odd / "digit.wav").unlink()
    (odd / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    # A broken file is skipped and said (tests/test_doors.py); when nothing else is left, it is the error.
    result = run_cli("evaluate", model, "--data", odd, timeout=300)
    assert result.returncode == 2 and "broken.wav is not a readable audio file" in result.stderr


def test_audio_files_are_resampled_for_audio_models(tmp_path):
    """FSDD (8 kHz, variable length) and FLAC clips feed the 16 kHz KWS model; bad audio is refused clearly."""
    import soundfile

    from tflite_fineprune.converters.speech import export_mlperf
    from tests.realdata import require

    fsdd = require("fsdd/recordings")
    require("mlperf_tiny/keyword_spotting/kws_ref_model")
    model = tmp_path / "kws.tflite"
    export_mlperf(model)
    assert Personalizer(model).metadata.sample_rate == 16000
    user = tmp_path / "user"
    user.mkdir()
    for path in sorted(fsdd.glob("*_jackson_*.wav"))[:5]:
        os.symlink(path, user / path.name)
    speech = require("speech_commands_v0.02_test")
    clip, rate = soundfile.read(sorted((speech / "yes").glob("*.wav"))[0], dtype="int16")
    soundfile.write(user / "yes.flac", clip, rate)
    out = cli_output("personalize", model, "--data", user, "--sparsity", 0.0, "--state", tmp_path / "s.state")
    assert "observed 6 samples from 6 files" in out
    notes = [line for line in out.splitlines() if line.startswith("note: resampled")]  # one line, not one per file
    assert notes == ["note: resampled 5 audio files to the model's 16000 Hz (5 at 8000 Hz) with soxr"], out

    for name, data, rate, message in [("silent.wav", np.zeros(16000, np.int16), 16000, "silent"),
                                      ("slow.wav", np.ones(100, np.int16), 50, "sample rate of 50 Hz")]:
        bad = tmp_path / name.split(".")[0]
        bad.mkdir()
        soundfile.write(bad / name, data, rate)
        result = run_cli("personalize", model, "--data", bad, "--sparsity", "0.1", "--state", tmp_path / "x.state",
                         timeout=300)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_unreadable_images_and_empty_audio_are_named(exports, tmp_path):
    import wave

    data = tmp_path / "data"
    data.mkdir()
    (data / "photo.jpg").write_text("not really a JPEG")
    result = run_cli("personalize", exports.path("plain_cnn"), "--data", data, "--sparsity", "0.1",
                     "--state", tmp_path / "s.state", timeout=300)
    assert result.returncode == 2 and "photo.jpg is not a readable image" in result.stderr
    audio = tmp_path / "audio"
    audio.mkdir()
    with wave.open(str(audio / "empty.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(b"")
    result = run_cli("personalize", exports.path("conv1d_audio"), "--data", audio, "--sparsity", "0.1",
                     "--state", tmp_path / "a.state", timeout=300)
    assert result.returncode == 2 and "empty.wav" in result.stderr and "no audio samples" in result.stderr
