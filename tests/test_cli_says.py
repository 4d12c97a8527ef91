"""The CLI says what it does (issue #15, part 4): real exports, real files, the real entry point in a subprocess."""

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.cli import run_cli
from tests.synthetic import images


run = functools.partial(run_cli, as_user=True)  # without the tests' TF_CPP_MIN_LOG_LEVEL, as a user runs it


def npy_folder(root, x):
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "samples.npy", x)
    return root


def test_no_interpreter_notes_on_runtime_commands(exports, tmp_path):
    model = exports.path("plain_cnn", prune_outputs=True)
    data = npy_folder(tmp_path / "user", images(12))
    result = run("personalize", model, "--data", data, "--state", tmp_path / "me.state")
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "INFO:" not in result.stderr, result.stderr
    npy_folder(tmp_path / "test" / "3", images(4))
    result = run("evaluate", model, "--data", tmp_path / "test")
    assert result.returncode == 0 and "XNNPACK" not in result.stderr, result.stderr


def test_a_closed_pipe_ends_quietly(exports):
    process = subprocess.Popen([sys.executable, "-m", "tflite_fineprune", "inspect", exports.path("plain_cnn")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # like `| head` that has read what it wanted before the report is written
    err = process.stderr.read().decode()
    assert process.wait() == 141 and err == "", err


# -- a second personalize, another model's state -------------------------------------------------------------


def _words(text):
    return " ".join(text.split()).lower()


def test_a_second_personalize_replaces_the_state_and_says_so_everywhere(exports, tmp_path):
    from tflite_fineprune import Personalizer
    from tflite_fineprune.cli import RERUN

    model = exports.path("plain_cnn", prune_outputs=True)
    data = npy_folder(tmp_path / "user", images(30, seed=1))
    more = npy_folder(tmp_path / "more", images(20, seed=2))
    state = tmp_path / "me.state"
    assert run("personalize", model, "--data", data, "--state", state).returncode == 0
    again = run("personalize", model, "--data", more, "--state", state)
    assert again.returncode == 0, again.stderr
    assert f"note: replacing {state} (30 samples observed before): {RERUN}" in again.stdout
    expected = Personalizer(model)
    expected.personalize(images(20, seed=2))
    saved = Personalizer(model)
    saved.load_state(state)
    assert saved.samples == 20
    np.testing.assert_array_equal(saved.get_state().masks, expected.get_state().masks)

    root = os.path.join(os.path.dirname(__file__), "..")
    shown = {"--help": run("personalize", "--help").stdout}
    for doc in ("docs/cli.md", "docs/newcomer.md"):
        with open(os.path.join(root, doc), encoding="utf-8") as f:
            shown[doc] = f.read()
    for where, text in shown.items():
        assert RERUN in _words(text), where
        for stale in ("cumulative", "counts the new data on top", "loaded if it exists", "continues from"):
            assert stale not in _words(text), (where, stale)


def test_another_models_state_is_refused_unless_fresh(exports, tmp_path):
    mine = exports.path("plain_cnn", prune_outputs=True)
    other = exports.path("dense_only")
    data = npy_folder(tmp_path / "user", images(12))
    state = tmp_path / "me.state"
    assert run("personalize", other, "--data", data, "--state", state, "--sparsity", 0.1).returncode == 0
    before = state.read_bytes()
    for expert in ((), ("--sparsity", 0.1)):
        refused = run("personalize", mine, "--data", data, "--state", state, *expert)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "belongs to another model" in refused.stderr and "--fresh" in refused.stderr
        assert "truncated" not in refused.stderr and state.read_bytes() == before
    # The model itself named as --state by mistake is not overwritten either.
    wrong = run("personalize", mine, "--data", data, "--state", other)
    assert wrong.returncode == 2 and "not a tflite-fineprune state file" in wrong.stderr
    fresh = run("personalize", mine, "--data", data, "--state", state, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "note: replacing" in fresh.stdout and "(--fresh)" in fresh.stdout and "another model" in fresh.stdout
    assert state.read_bytes() != before


def test_a_real_models_state_in_another_real_model_is_named_as_such(mlperf_kws, mlperf_resnet8, tmp_path):
    """The issue's case: a DS-CNN state (588 units, BN statistics) given to ResNet-8 was "truncated or padded"."""
    from tflite_fineprune import FinePruneError, Personalizer

    Personalizer(mlperf_kws).save_state(tmp_path / "kws.state")
    vision = Personalizer(mlperf_resnet8)
    try:
        vision.load_state(tmp_path / "kws.state")
    except FinePruneError as exc:
        assert "belongs to another model" in str(exc) and "truncated" not in str(exc), exc
    else:
        raise AssertionError("another model's state was loaded")


# -- numbers: one source ---------------------------------------------------------------------------------------


def test_quoted_numbers_come_from_the_readme_rows(exports, tmp_path):
    import re

    from tflite_fineprune.readme_numbers import DEMO_ROWS, newcomer_section, row

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for kind, (_, _, rows) in DEMO_ROWS.items():
        for name, numbers in rows:
            assert re.search(rf"^{re.escape(name)} +{re.escape(numbers)}$", readme, re.MULTILINE), (kind, name)
    with open(os.path.join(root, "docs", "newcomer.md"), encoding="utf-8") as f:
        newcomer = f.read()
    block = newcomer.split("do not edit -->\n")[1].split("<!-- end of generated block -->")[0]
    assert block.strip() == newcomer_section().strip()

    from tests.synthetic import clips

    model = exports.path("conv1d_audio", sample_rate=16000, prune_outputs=True)
    data = npy_folder(tmp_path / "clips", clips(8))
    warned = run("personalize", model, "--data", data, "--state", tmp_path / "a.state", "--sparsity", 0.05,
                 "--min-class-fraction", 0.05)
    two, unseen = row("speech", "prune 2% units"), row("speech", "drop unseen classes")
    assert f"{two.change} and hurt {two.hurt} speakers" in warned.stderr, warned.stderr
    assert f"{unseen.change} and hurt {unseen.hurt} of {unseen.users} speakers" in warned.stderr
    helptext = run("personalize", "--help").stdout
    assert row("vision", "classes <10%").change in helptext and "Which settings help" not in helptext


# -- evaluate the file you ship ---------------------------------------------------------------------------------


def test_evaluate_measures_a_slim_model(exports, tmp_path):
    from tflite_fineprune import Personalizer

    model = exports.path("plain_cnn", prune_outputs=True)
    x = images(40, seed=4)
    user = Personalizer(model)
    user.observe(x)
    user.prune(0.3)
    user.save_state(tmp_path / "me.state")
    slim = tmp_path / "me.tflite"
    assert run("slim", model, "--state", tmp_path / "me.state", "-o", slim).returncode == 0
    test = npy_folder(tmp_path / "test" / "3", x)
    masked = run("evaluate", model, "--data", test.parent, "--state", tmp_path / "me.state")
    shipped = run("evaluate", slim, "--data", test.parent)
    assert masked.returncode == 0 and shipped.returncode == 0, shipped.stderr
    accuracy = float(np.mean(user.predict(x).argmax(1) == 3))
    assert f"accuracy {accuracy:.4f} on 40 samples" in shipped.stdout
    assert shipped.stdout.split(";")[0] == masked.stdout.split(";")[0]
    sparsity = user.sparsity()
    assert f"unit sparsity {sparsity.units:.1%}" in shipped.stdout and "slim model" in shipped.stdout
    refused = run("evaluate", slim, "--data", test.parent, "--state", tmp_path / "me.state")
    assert refused.returncode == 2 and "is a slim model" in refused.stderr and "without --state" in refused.stderr


# -- audio folders: MP3s read or skipped with a word, resampling said once -----------------------------------------


def _mixed_audio_folder(root):
    """Three 8 kHz PCM WAVs, three 16 kHz MP3s (written by soundfile's libsndfile) and a text file."""
    import soundfile

    from tests.synthetic import clips

    root.mkdir()
    pcm = clips(6, seed=5)
    for i in range(3):
        soundfile.write(root / f"wav{i}.wav", pcm[i, ::2], 8000, subtype="PCM_16")
        soundfile.write(root / f"mp3{i}.mp3", pcm[3 + i], 16000, format="MP3")
    (root / "notes.txt").write_text("recorded on my phone\n")
    return root


def test_mp3_files_are_read_or_skipped_with_a_word(exports, tmp_path):
    import soundfile

    if "MP3" not in soundfile.available_formats():
        pytest.skip(f"libsndfile {soundfile.__libsndfile_version__} writes no MP3 to test with")
    model = exports.path("conv1d_audio", sample_rate=16000, prune_outputs=True)
    data = _mixed_audio_folder(tmp_path / "mixed")
    read = run("personalize", model, "--data", data, "--state", tmp_path / "a.state")
    assert read.returncode == 0, read.stderr
    assert "observed 6 samples from 6 files" in read.stdout
    assert "note: skipped 1 file: 1 .txt (not a data file" in read.stdout
    assert [line for line in read.stdout.splitlines() if line.startswith("note: resampled")] == [
        "note: resampled 3 audio files to the model's 16000 Hz (3 at 8000 Hz) with soxr"]

    # An installation without soundfile reads the WAVs (Python's wave module) and says why the MP3s are left.
    blocker = tmp_path / "no_soundfile"
    blocker.mkdir()
    (blocker / "soundfile.py").write_text("raise ImportError('soundfile is not installed')\n")
    checkout = os.path.join(os.path.dirname(__file__), "..")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), checkout, os.environ.get("PYTHONPATH", "")]))
    without = run("personalize", model, "--data", data, "--state", tmp_path / "b.state", env=env)
    assert without.returncode == 0, without.stderr
    assert "observed 3 samples from 3 files" in without.stdout
    assert ("note: skipped 4 files: 3 .mp3 (not readable without soundfile: pip install soundfile); 1 .txt"
            in without.stdout), without.stdout


# -- inspect and the personalize report say what the numbers count -------------------------------------------------


def test_inspect_shows_a_speech_models_sample_rate(exports):
    result = run("inspect", exports.path("conv1d_audio", sample_rate=16000))
    assert result.returncode == 0, result.stderr
    assert "audio at 16000 Hz, 1 s clips" in result.stdout.splitlines()[1]
    assert "Hz" not in run("inspect", exports.path("plain_cnn")).stdout.splitlines()[1]


def test_the_report_counts_excluded_classes_as_pruned_units(mlperf_resnet8, tmp_path):
    """A CIFAR-10 user of three classes on the real ResNet-8: classes excluded and hidden units pruned add up to
    the unit sparsity the report states and the saved state holds."""
    import re

    from tests.realdata import cifar_files
    from tflite_fineprune import Personalizer

    user = tmp_path / "user"
    user.mkdir()
    for path in cifar_files(20, ("cat", "dog", "ship")):
        os.symlink(path, user / f"{path.parent.name}_{path.name}")
    result = run("personalize", mlperf_resnet8, "--data", user, "--state", tmp_path / "me.state")
    assert result.returncode == 0, result.stderr
    classes = re.search(r"^classes excluded: (\d+)(?: \((.*)\))?$", result.stdout, re.MULTILINE)
    hidden = re.search(r"^hidden units pruned: (\d+)", result.stdout, re.MULTILINE)
    total = re.search(r"^unit sparsity ([\d.]+)% \((\d+) of (\d+) units: (\d+) classes, (\d+) hidden\)",
                      result.stdout, re.MULTILINE)
    assert classes and hidden and total, result.stdout
    excluded, pruned_hidden = int(classes.group(1)), int(hidden.group(1))
    assert excluded > 0 and len(classes.group(2).split(", ")) == excluded  # the user meets 3 of 10 classes
    assert (int(total.group(4)), int(total.group(5))) == (excluded, pruned_hidden)
    assert int(total.group(2)) == excluded + pruned_hidden
    saved = Personalizer(mlperf_resnet8)
    saved.load_state(tmp_path / "me.state")
    sparsity = saved.sparsity()
    assert sparsity.pruned_units == excluded + pruned_hidden and int(total.group(3)) == sparsity.total_units
    assert f"{sparsity.units:.1%}" == f"{total.group(1)}%"
    if pruned_hidden == 0:
        assert "prune units" not in result.stdout.splitlines()[1]  # the recipe line names only what it did


# -- --help shows every default once ------------------------------------------------------------------------------


def _option_helps(text):
    """Each option's help text, from the start of its line to the next option (argparse's layout)."""
    import re

    return [" ".join(chunk.split()) for chunk in re.split(r"\n  (?=-)", text.split("options:")[1])[1:]]


def test_every_command_shows_each_default_once():
    from tflite_fineprune.cli import build_parser

    helps = {}
    commands = next(a for a in build_parser()._actions if a.choices and "personalize" in a.choices).choices
    for name, sub in commands.items():
        helps[f"tflite-fineprune {name}"] = sub.format_help()
        for action in sub._actions:
            default = action.default
            if action.option_strings and default not in (None, False, (), "==SUPPRESS=="):
                assert f"(default: {default})" in " ".join(helps[f"tflite-fineprune {name}"].split()), (name, action)
    speech, vision = "tflite_fineprune.converters.speech", "tflite_fineprune.converters.vision"
    for module, command in ((speech, "mlperf"), (speech, "train"), (vision, "mlperf"), (vision, "keras-app"),
                            (vision, "fashion-mlp")):
        result = run_cli(command, "--help", module=module, timeout=300)
        assert result.returncode == 0, result.stderr
        helps[f"{module} {command}"] = result.stdout
    from tflite_fineprune.converters.speech_training import TrainingRecipe

    train, recipe = _option_helps(helps["tflite_fineprune.converters.speech train"]), TrainingRecipe()
    for option, default in (("--epochs", recipe.max_epochs), ("--patience", recipe.patience),
                            ("--width", recipe.width), ("--seed", recipe.seed)):
        shown = next(text for text in train if text.startswith(option))
        assert f"(default: {default})" in shown, (option, shown)
    # --prune-outputs defaults to None (ExportOptions): its help says what that means, once.
    shown = next(text for text in train if text.startswith("--prune-outputs"))
    assert "(default: wherever the output layer allows it" in " ".join(shown.split()), shown
    assert "(default: 5)" in helps["tflite_fineprune.converters.vision fashion-mlp"]
    assert "(default: android_demo/app/src/main/assets)" in " ".join(helps["tflite-fineprune android-assets"].split())
    for where, text in helps.items():
        for option in _option_helps(text):
            assert option.count("default") <= 1, (where, option)


# -- android-assets: only the useful lines ----------------------------------------------------------------------------


@pytest.mark.slow
def test_android_assets_prints_only_what_it_made(tmp_path):
    """Both default models exported (TensorFlow loaded) and the users written: no TensorFlow log line, no
    scratch path, one line per model and per user."""
    from tests.realdata import require

    data = require("speech_commands_v0.02_test").parent
    require("cifar10_test")
    require("mlperf_tiny/keyword_spotting/kws_ref_model")
    require("mlperf_tiny/image_classification/pretrainedResnet.h5")
    result = run("android-assets", "-o", tmp_path / "assets", "--data", data)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert "fineprune-assets-" not in result.stdout and "fineprune-export-" not in result.stdout
    assert [line.split(":")[0] for line in lines] == ["speech", "vision", "speech", "vision", "wrote " + str(
        tmp_path / "assets" / "manifest.json")], result.stdout
    assert "exported the MLPerf Tiny DS-CNN" in lines[0] and "as models/speech.tflite" in lines[0]
