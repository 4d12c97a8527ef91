"""The Android demo's asset pipeline, and the contracts between Python and the app's Kotlin core.

Real models (the MLPerf Tiny exports), real users (Speech Commands, CIFAR-10), the real JVM code
through `android_demo/check.sh` (skipped, saying so, where Maven is not installed).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.realdata import REPO, data_root, require
from tflite_fineprune import Personalizer
from tflite_fineprune.cli import main
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.auto_recipe import AutoRule
from tflite_fineprune.state import encode_state
from tflite_fineprune.safe_io import read_file

CHECK = REPO / "android_demo" / "check.sh"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """`android-assets` with its default models, plus the recordings of the app's session."""
    require("speech_commands_v0.02_test")
    require("cifar10_test")
    from tflite_fineprune.converters.android_assets import build_assets

    folder = tmp_path_factory.mktemp("android")
    manifest = build_assets(folder / "assets", data=data_root(), record=folder / "recordings")
    return folder / "assets", folder / "recordings", manifest


def needs_maven():
    if shutil.which("mvn") is None or shutil.which("java") is None:
        pytest.skip("Maven and a JDK are not installed; .ci/run has them (android_demo/check.sh)")


def check_sh(*args, cwd=REPO):
    # The Activity tests (replay mode) run the model's signatures through this Python's LiteRT.
    env = {**os.environ, "FINEPRUNE_PYTHON": os.environ.get("FINEPRUNE_PYTHON_BRIDGE", sys.executable)}
    return subprocess.run(["bash", str(CHECK), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env=env)


def _load(kind, path, manifest_model):
    from tflite_fineprune.converters.android_assets import _load_sample

    return _load_sample(kind, path, manifest_model)


def test_manifest_files_and_numbers(generated):
    assets, _, manifest = generated
    on_disk = json.loads((assets / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["format"] == "tflite-fineprune-android-assets" and manifest["format_version"] == 1
    assert [m["kind"] for m in manifest["models"]] == ["speech", "vision"]
    total = sum(f.stat().st_size for f in assets.rglob("*") if f.is_file())
    assert total < 8_000_000, f"assets take {total} bytes; keep the APK small"
    for model in manifest["models"]:
        assert (assets / model["file"]).stat().st_size == model["file_bytes"]
        for name in ("infer", "collect", "reset", "get_state", "set_state"):
            assert name in model["signatures"]
        assert model["signatures"]["infer"]["inputs"][0]["shape"][0] == 1
        assert model["metadata"]["fingerprint"] == model["fingerprint"]
    speech, vision = manifest["models"]
    assert speech["sample_rate"] == 16000 and speech["signatures"]["infer"]["inputs"][0]["dtype"] == "float32"
    assert vision["image_size"] == [32, 32] and vision["signatures"]["infer"]["inputs"][0]["dtype"] == "uint8"
    for user in manifest["users"]:
        assert all(isinstance(f, str) and (assets / f).is_file() for f in user["adapt"])  # no labels
        assert all((assets / e["file"]).is_file() for e in user["eval"])
        assert not set(user["adapt"]) & {e["file"] for e in user["eval"]}
    speaker, cifar = manifest["users"]
    assert len(speaker["adapt"]) + len(speaker["eval"]) >= 30
    # A class-subset user with enough unlabeled images for the class test to act (50 a class, as in the demo).
    classes = {e["label"] for e in cifar["eval"]}
    assert len(classes) in (2, 3, 5) and len(cifar["adapt"]) == len(cifar["eval"]) == 50 * len(classes)


def test_bundled_users_are_the_demos_representative_users(generated):
    """Each bundled user is the one `REPRESENTATIVE_RULE` picks from the demo's own per-user table, which the
    manifest records; the phone's expected numbers are that table's row; the users show the recipe's gain."""
    from tflite_fineprune.converters import demo
    from tflite_fineprune.converters.android_assets import REPRESENTATIVE_RULE, _demo_users, representative_user

    _, _, manifest = generated
    gains = []
    for user in manifest["users"]:
        chosen_by, expected = user["chosen_by"], user["expected"]
        model = next(m for m in manifest["models"] if m["key"] == user["model"])
        # The table covers every user of the demo of that kind (same users, same splits), not a selection.
        demo_users = _demo_users(model["kind"], data_root(), model["labels"])
        table = chosen_by["evaluation"]
        assert [r["user"] for r in table] == [u.name for u in demo_users] and chosen_by["users"] == len(table)
        assert [(r["adapt"], r["eval"]) for r in table] == [(len(u.adapt_x), len(u.eval_y)) for u in demo_users]
        assert len(table) == (53 if model["kind"] == "speech" else 30)
        assert chosen_by["rule"] == REPRESENTATIVE_RULE
        assert chosen_by["mean_dense_accuracy"] == pytest.approx(np.mean([r["dense_accuracy"] for r in table]))
        assert chosen_by["mean_accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in table]))
        row = representative_user([{**r, "recipe": "auto"} for r in table])
        assert row["user"] == chosen_by["demo_user"]
        gain = row["accuracy"] - row["dense_accuracy"]
        assert all(abs(gain - chosen_by["mean_gain"])
                   <= abs(r["accuracy"] - r["dense_accuracy"] - chosen_by["mean_gain"]) + 1e-9
                   for r in table)
        # What the app measures on the bundled files is the demo's row for that user.
        assert (expected["dense_accuracy"], expected["accuracy"]) == (row["dense_accuracy"], row["accuracy"])
        assert (len(user["adapt"]), len(user["eval"])) == (row["adapt"], row["eval"])
        demo_user = next(u for u in demo_users if u.name == row["user"])
        assert [e["label"] for e in user["eval"]] == [int(y) for y in demo_user.eval_y]
        assert expected["accuracy"] >= expected["dense_accuracy"], f"{user['name']} is worse than dense"
        gains.append(expected["accuracy"] - expected["dense_accuracy"])
    assert max(gains) >= 0.05, f"no bundled user gains five points: {gains}"
    assert demo.AUTO.rule == AutoRule(**manifest["models"][0]["recipe"]["rule"])  # the demo's recipe


def test_representative_rule():
    from tflite_fineprune.converters.android_assets import representative_user

    def row(user, dense, accuracy, recipe="auto"):
        return {"user": user, "recipe": recipe, "dense_accuracy": dense, "accuracy": accuracy}

    rows = [row("c", 0.5, 0.5), row("b", 0.3, 0.5), row("a", 0.1, 0.3), row("d", 0.2, 0.6)]
    # Mean gain 0.2; b and a both gain 0.2 (in floats a's is 3e-17 further away: rounded, they tie and the
    # first by name wins); c and d are 0.2 away.
    assert representative_user(rows)["user"] == "a"
    assert representative_user(rows[:1])["user"] == "c"
    assert representative_user([row("c", 0.5, 0.5), row("e", 0.9, 0.8), row("d", 0.2, 0.6)])["user"] == "c"
    with pytest.raises(FinePruneError, match="the rows of one recipe"):
        representative_user(rows + [row("f", 0.5, 0.6, recipe="dense")])
    with pytest.raises(FinePruneError, match="got 0 rows"):
        representative_user([])


def test_manifest_numbers_are_what_the_python_runtime_gets(generated):
    """The app's raw call sequence and `Personalizer.personalize` (the automatic recipe) agree on every user."""
    assets, _, manifest = generated
    for user in manifest["users"]:
        model = next(m for m in manifest["models"] if m["key"] == user["model"])
        assert model["recipe"]["kind"] == "auto"
        personalizer = Personalizer(assets / model["file"])
        adapt = np.stack([_load(model["kind"], assets / f, model) for f in user["adapt"]])
        eval_x = np.stack([_load(model["kind"], assets / e["file"], model) for e in user["eval"]])
        eval_y = np.array([e["label"] for e in user["eval"]])
        personalizer.reset()
        dense = float(np.mean(personalizer.predict(eval_x).argmax(1) == eval_y))
        report = personalizer.personalize(adapt, rule=AutoRule(**model["recipe"]["rule"]))
        after = float(np.mean(personalizer.predict(eval_x).argmax(1) == eval_y))
        s = personalizer.sparsity()
        expected = user["expected"]
        assert (dense, after, s.pruned_units) == (expected["dense_accuracy"], expected["accuracy"],
                                                  expected["pruned_units"])
        assert list(report.excluded_classes) == expected["excluded_classes"]
        assert report.recipe == expected["chosen"]
        # The recipe names unit pruning only when hidden units were pruned (excluded classes are output units).
        assert ("prune units" in report.recipe) == any(report.units_pruned.values())
        assert s.weights == pytest.approx(expected["weight_sparsity"], abs=1e-12)
        assert s.macs == pytest.approx(expected["mac_sparsity"], abs=1e-12)


@pytest.mark.slow  # .ci/run also runs `check.sh replay` on the assets it generates
def test_jvm_replays_the_recorded_session(generated):
    needs_maven()
    assets, recordings, _ = generated
    result = check_sh("replay", assets, recordings)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = ET.parse(REPO / "android_demo/core/target/surefire-reports/TEST-org.tflitefineprune.core.ReplayTest.xml")
    suite = report.getroot()
    assert int(suite.get("tests")) >= 3 and suite.get("skipped") == "0" and suite.get("failures") == "0"
    # The real MainActivity on Robolectric, every flow, none skipped.
    report = ET.parse(REPO / "android_demo/app/target/surefire-reports"
                      / "TEST-org.tflitefineprune.demo.MainActivityTest.xml")
    suite = report.getroot()
    assert int(suite.get("tests")) >= 8 and suite.get("skipped") == "0" and suite.get("failures") == "0"
    assert suite.get("errors") == "0"


_NORMALIZATION = ("norm_sums", "norm_squares", "norm_count", "norm_mean", "norm_var")


def _personalized(assets, manifest, kind):
    model = next(m for m in manifest["models"] if m["kind"] == kind)
    user = next(u for u in manifest["users"] if u["model"] == model["key"])
    personalizer = Personalizer(assets / model["file"])
    personalizer.observe(np.stack([_load(kind, assets / f, model) for f in user["adapt"]]))
    personalizer.prune(0.1)
    if kind == "vision":
        personalizer.prune_outputs(0.1)
    personalizer.adapt_normalization(0.3)  # statistics that differ from the trained ones
    return personalizer


@pytest.mark.parametrize("kind", ["speech", "vision"])
def test_python_state_reads_in_java(generated, tmp_path, kind):
    needs_maven()
    assets, _, manifest = generated
    personalizer = _personalized(assets, manifest, kind)
    personalizer.save_state(tmp_path / "user.state")
    result = check_sh("decode-state", tmp_path / "user.state")
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout.strip().splitlines()[-1])
    state = personalizer.get_state()
    # The default exports embed normalization statistics and magnitude pruning: a version-4 file with flag bits 2
    # and 4.
    assert personalizer.metadata.normalization_channels > 0
    assert decoded["format_version"] == 4 and decoded["flags"] == 4 | 16
    np.testing.assert_array_equal(np.array(decoded["magnitudes"], np.float32), state.magnitudes)
    assert decoded["fingerprint"] == personalizer.metadata.fingerprint
    assert decoded["samples"] == state.samples
    np.testing.assert_array_equal(np.array(decoded["masks"], np.float32), state.masks)
    np.testing.assert_array_equal(np.array(decoded["counts"], np.float32), state.counts)
    for name in _NORMALIZATION:
        assert len(decoded[name]) == personalizer.metadata.normalization_channels
        np.testing.assert_array_equal(np.array(decoded[name], np.float32), getattr(state, name))
    assert 0 < sum(decoded["masks"]) < len(decoded["masks"])


def test_java_state_loads_in_python(generated, tmp_path):
    needs_maven()
    assets, _, manifest = generated
    personalizer = _personalized(assets, manifest, "vision")
    state = personalizer.get_state()
    masks = state.masks.copy()
    masks[np.flatnonzero(masks)[1]] = 0.0  # a change only the Kotlin-written file carries
    body = {"fingerprint": personalizer.metadata.fingerprint, "samples": state.samples,
            "masks": [int(m) for m in masks], "counts": [float(c) for c in state.counts],
            **{name: [float(v) for v in getattr(state, name)] for name in _NORMALIZATION + ("magnitudes",)}}
    (tmp_path / "in.json").write_text(json.dumps(body))
    result = check_sh("encode-state", tmp_path / "in.json", tmp_path / "kotlin.state")
    assert result.returncode == 0, result.stderr
    written = read_file(tmp_path / "kotlin.state", "state")
    assert written == encode_state(personalizer.metadata.fingerprint, dataclasses.replace(state, masks=masks))
    personalizer.reset()
    personalizer.load_state(tmp_path / "kotlin.state")
    loaded = personalizer.get_state()
    np.testing.assert_array_equal(loaded.masks, masks)
    for name in _NORMALIZATION:  # the user's moments and the adapted statistics made the trip
        np.testing.assert_array_equal(getattr(loaded, name), getattr(state, name))


def test_decode_state_refuses_a_damaged_file(tmp_path):
    needs_maven()
    blob = bytearray(encode_state("ab" * 32, _tiny_state()))
    blob[60] ^= 1
    (tmp_path / "bad.state").write_bytes(bytes(blob))
    result = check_sh("decode-state", tmp_path / "bad.state")
    assert result.returncode == 2 and "checksum mismatch" in result.stderr


def _tiny_state():
    from tflite_fineprune.state import State

    return State(masks=np.array([1, 0, 1], np.float32), counts=np.array([1, 2, 3], np.float32), samples=3.0)


def test_clear_errors(tmp_path, exports, generated):
    from tflite_fineprune.converters.android_assets import build_assets

    with pytest.raises(FinePruneError, match="does not exist"):
        build_assets(tmp_path / "out", data=tmp_path / "no-data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinePruneError, match="lacks speech_commands_v0.02_test, cifar10_test"):
        build_assets(tmp_path / "out", data=tmp_path / "empty")
    (tmp_path / "file").write_text("")
    with pytest.raises(FinePruneError, match="cannot write the asset folder"):
        build_assets(tmp_path / "file" / "assets", data=data_root())
    # The automatic recipe takes any signature set (like Personalizer.personalize); a float-input model is no
    # uint8 image model, and nothing is written.
    plain = exports.path("dense_only")
    with pytest.raises(FinePruneError, match="is not a uint8 image model"):
        build_assets(tmp_path / "out2", speech=generated[0] / "models" / "speech.tflite", vision=plain,
                     data=data_root())
    assert not (tmp_path / "out2" / "models").exists()
    assert main(["android-assets", "-o", str(tmp_path / "out3"), "--data", str(tmp_path / "empty")]) == 2
