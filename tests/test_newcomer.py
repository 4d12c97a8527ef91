"""A newcomer's first hour (issue #6, section 2): the commands say what they do, where to get what they need,
and warn where the measurements say a setting hurts. Runs anywhere: synthetic inputs, no shared data."""

import functools
import re

import numpy as np
import pytest

from tests.cli import run_cli
from tests.synthetic import clips, images
from tflite_fineprune import FinePruneError, Personalizer
from tflite_fineprune.demo_data import CIFAR10_LABELS

TF_NOISE = re.compile(r"cuda|cuInit|oneDNN|absl|XNNPACK|cpu_feature_guard", re.IGNORECASE)


run = functools.partial(run_cli, as_user=True)  # without the tests' TF_CPP_MIN_LOG_LEVEL, as a newcomer runs it


def npy_folder(root, x):
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "samples.npy", x)
    return root


# -- --help ------------------------------------------------------------------------------------------------


def test_every_option_has_help_and_examples_are_the_measured_ones():
    from tflite_fineprune.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.choices and "personalize" in a.choices).choices
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"
    top = run("--help").stdout
    assert "--fashion" in top
    personalize = run("personalize", "--help").stdout
    assert "(default: 32)" in personalize and "(default: auto)" in personalize
    assert "--sparsity 0.3" not in personalize and "--min-class-fraction 0.1" in personalize
    assert "--fresh" in personalize.split("examples")[1]
    first_example = next(line for line in personalize.split("examples")[1].splitlines()
                         if line.strip().startswith("tflite-fineprune"))
    plain = "tflite-fineprune personalize model.tflite --data my_photos/ --state me.state"
    assert first_example.split() == plain.split()
    export = run("export", "--help").stdout
    assert "(default: layerwise)" in export and "tflite_fineprune.converters.vision keras-app" in export


# -- personalize: reruns, dropped classes, changed predictions ---------------------------------------------


def test_personalize_says_what_it_did(exports, tmp_path):
    model = exports.path("plain_cnn", prune_outputs=True, labels=CIFAR10_LABELS)
    x = images(40, seed=3)
    data = npy_folder(tmp_path / "user", x)
    state = tmp_path / "me.state"

    # The independent expectation: which classes fall below 20%, and how many predictions 50% pruning changes.
    reference = Personalizer(model)
    dense = reference.observe(x).argmax(1)
    reference.prune(0.5)
    changed = np.mean(reference.predict(x).argmax(1) != dense)
    frequency = np.bincount(dense, minlength=10) / len(x)
    dropped = [CIFAR10_LABELS[i] for i in range(10) if frequency[i] < 0.2]
    if len(dropped) == 10:
        dropped.remove(CIFAR10_LABELS[int(np.argmax(frequency))])

    first = run("personalize", model, "--data", data, "--state", state, "--sparsity", 0.5,
                "--min-class-fraction", 0.2)
    assert first.returncode == 0, first.stderr
    assert f"dropped {len(dropped)} classes: {', '.join(dropped)};" in first.stdout
    assert "replacing" not in first.stdout
    assert "observe" in first.stderr and "load" in first.stderr  # progress bars
    assert ("changed the predicted class" in first.stderr) == (changed > 0.10)
    assert "speech model" not in first.stderr
    assert not TF_NOISE.search(first.stderr.replace("XNNPACK delegate", ""))

    # A second run starts from the dense model: a lower --sparsity prunes less than the first run did.
    again = run("personalize", model, "--data", data, "--state", state, "--sparsity", 0.1)
    assert again.returncode == 0, again.stderr
    assert "note: replacing" in again.stdout and "(40 samples observed before)" in again.stdout
    restored = Personalizer(model)
    restored.load_state(state)
    expected = Personalizer(model)
    expected.observe(x)
    expected.prune(0.1)
    assert restored.samples == 40
    np.testing.assert_array_equal(restored.get_state().masks, expected.get_state().masks)


def test_speech_models_warn_on_pruning(exports, tmp_path):
    model = exports.path("conv1d_audio", sample_rate=16000)
    data = npy_folder(tmp_path / "clips", clips(8))
    pruned = run("personalize", model, "--data", data, "--state", tmp_path / "a.state", "--sparsity", 0.05)
    assert pruned.returncode == 0, pruned.stderr
    assert "warning: --sparsity 0.05 on a speech model" in pruned.stderr and "--sparsity 0 " in pruned.stderr
    dense = run("personalize", model, "--data", data, "--state", tmp_path / "b.state", "--sparsity", 0)
    assert dense.returncode == 0, dense.stderr
    assert "warning" not in dense.stderr


# -- class pruning is findable ------------------------------------------------------------------------------


def test_class_pruning_names_the_flag(exports, tmp_path):
    model = exports.path("dense_only")
    result = run("personalize", model, "--data", npy_folder(tmp_path / "u", images(10)), "--state",
                 tmp_path / "s.state", "--sparsity", 0, "--min-class-fraction", 0.1)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "tflite-fineprune export --prune-outputs" in result.stderr and "prune_outputs=True" in result.stderr
    assert not (tmp_path / "s.state").exists()
    with pytest.raises(FinePruneError, match=r"without output \(class\) pruning.*prune_outputs") as error:
        p = Personalizer(model)
        p.observe(images(10))
        p.prune_outputs(0.1)
    assert "--" not in str(error.value)  # the library names its own option; the CLI adds its flag
    inspect = run("inspect", model)
    assert "tflite-fineprune export --prune-outputs" in inspect.stdout  # the CLI flag, not only the Python one
    assert "export with --prune-outputs" in inspect.stdout


# -- export: quiet, staged, an honest check, keras.applications ----------------------------------------------


def test_export_is_quiet_staged_and_warns_about_keras_applications(tmp_path):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(3)], name="resnet50")
    model.save(tmp_path / "resnet50.keras")
    result = run("export", tmp_path / "resnet50.keras", "-o", tmp_path / "r.tflite")
    assert result.returncode == 0, result.stderr
    assert "converting to TFLite" in result.stdout and "checking the .tflite" in result.stdout
    assert "looks like a keras.applications model" in result.stderr
    assert "python -m tflite_fineprune.converters.vision keras-app" in result.stderr
    assert not TF_NOISE.search(result.stderr), result.stderr


def test_keras_application_warning_only_without_own_scaling(capsys):
    import keras
    from keras import layers

    from tflite_fineprune.cli.commands import _warn_if_keras_application

    def tiny(name, first):
        return keras.Sequential([keras.Input((4,)), *first, layers.Dense(2)], name=name)

    _warn_if_keras_application(tiny("MobilenetV3small", [layers.Rescaling(1 / 255.0)]))
    _warn_if_keras_application(tiny("my_classifier", []))
    assert capsys.readouterr().err == ""
    _warn_if_keras_application(tiny("mobilenetv2_1.00_224", []))
    assert "keras.applications" in capsys.readouterr().err


def test_export_check_is_inconclusive_on_flat_outputs(tmp_path):
    import keras
    from keras import layers

    from tflite_fineprune import export_model

    def model(kernel):
        m = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"),
                              layers.Dense(5, activation="softmax", kernel_initializer=kernel)])
        return m

    keras.utils.set_random_seed(0)
    flat = export_model(model("zeros"), tmp_path / "flat.tflite")  # softmax of constant logits: all 0.2
    assert flat.max_abs_error is not None and not flat.check_conclusive
    assert "inconclusive" in str(flat)
    varied = export_model(model("glorot_uniform"), tmp_path / "varied.tflite")
    assert varied.check_conclusive and varied.logit_error is not None and varied.logit_error < 1e-3
    assert "inconclusive" not in str(varied) and "logits" in str(varied)


def test_converters_are_quiet(tmp_path):
    result = run("--help", module="tflite_fineprune.converters.vision")
    assert result.returncode == 0 and "keras-app" in result.stdout
    assert result.stderr == ""


def test_the_old_converter_commands_say_where_they_went():
    # The checkout's converters/ (not installed) still runs `python -m converters.vision`, after one line.
    result = run("--help", module="converters.vision")
    assert result.returncode == 0 and "keras-app" in result.stdout
    assert result.stderr.splitlines() == ["converters.vision moved: run python -m tflite_fineprune.converters.vision"]


# -- demo --fashion: --data is honoured, and a missing data set says how to get it ------------------------


def test_fashion_data_lookup_honours_the_given_folder(tmp_path, monkeypatch):
    from tflite_fineprune.converters.fashion import FILES, find_fashion_mnist

    monkeypatch.delenv("FASHION_MNIST", raising=False)
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in (n for pair in FILES.values() for n in pair):
        (folder / name).write_bytes(b"")
    assert find_fashion_mnist(tmp_path / "data") == folder
    assert find_fashion_mnist(folder) == folder
    with pytest.raises(FinePruneError, match="apt-get install dataset-fashion-mnist") as raised:
        find_fashion_mnist(tmp_path / "elsewhere")  # never falls back to another folder silently
    assert "--data" in str(raised.value) and "elsewhere" in str(raised.value)
    monkeypatch.setenv("FASHION_MNIST", str(folder))
    assert find_fashion_mnist() == folder


def test_demo_fashion_without_data_says_how_to_get_it(tmp_path):
    result = run("demo", "--fashion", "--data", tmp_path / "nothing", "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "apt-get install dataset-fashion-mnist" in result.stderr and "--data" in result.stderr
    assert str(tmp_path / "nothing") in result.stderr
    assert not (tmp_path / "out" / "fashion_mlp.keras").exists()
