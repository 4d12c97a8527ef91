"""The Android demo's APK scripts: what they refuse, and the one place its versions live.

The APK itself is built and verified by `.ci/run` (`android_demo/build_apk.sh`, then `verify_apk.sh`); these tests
cover what that run cannot: a machine without the tools or the assets, and a broken APK.
"""

import os
import re
import shutil
import subprocess
import zipfile

import pytest

from tests.realdata import REPO

DEMO = REPO / "android_demo"
BUILD_APK = DEMO / "build_apk.sh"
VERIFY_APK = DEMO / "verify_apk.sh"


def fake_assets(folder):
    """Just what build_apk.sh looks for before it starts (the tests below stop it earlier)."""
    (folder / "models").mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "models" / "speech.tflite").write_bytes(b"TFL3")
    return folder


def path_without(tmp_path, *tools):
    """A PATH folder holding every command of this machine except `tools`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if name not in tools and not (bin_dir / name).exists() and os.access(target, os.X_OK):
                (bin_dir / name).symlink_to(target)
    return str(bin_dir)


def run(script, *args, env=None):
    return subprocess.run(["/bin/bash", str(script), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_build_apk_names_missing_tools_in_one_line(tmp_path):
    env = dict(os.environ, PATH=path_without(tmp_path, "aapt2", "apksigner"))
    result = run(BUILD_APK, "--assets", fake_assets(tmp_path / "assets"), env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("build_apk.sh: missing "), result.stderr
    assert "aapt2" in lines[0] and "apksigner" in lines[0]
    packages = lines[0].split("apt-get install -y ", 1)[1]
    assert {"aapt", "apksigner"} <= set(packages.rstrip(")").split())


def test_build_apk_refuses_to_build_without_assets(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(BUILD_APK, "--assets", tmp_path / "empty")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no demo assets" in lines[0] and "tflite-fineprune android-assets" in lines[0]


def test_release_build_refuses_without_its_signing_key_in_the_environment(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("FINEPRUNE_RELEASE_")}
    env["FINEPRUNE_RELEASE_KEY_ALIAS"] = "release"
    result = run(BUILD_APK, "--release", "--assets", fake_assets(tmp_path / "assets"), env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("build_apk.sh: --release signs with the key the environment names")
    named = {"FINEPRUNE_RELEASE_KEYSTORE", "FINEPRUNE_RELEASE_STORE_PASSWORD", "FINEPRUNE_RELEASE_KEY_PASSWORD"}
    assert all(name in lines[0] for name in named) and "FINEPRUNE_RELEASE_KEY_ALIAS" not in lines[0]
    env.update(FINEPRUNE_RELEASE_KEYSTORE=str(tmp_path / "absent.jks"), FINEPRUNE_RELEASE_STORE_PASSWORD="x",
               FINEPRUNE_RELEASE_KEY_PASSWORD="x")
    result = run(BUILD_APK, "--release", "--assets", fake_assets(tmp_path / "assets2"), env=env)
    assert result.returncode == 2 and "no keystore at" in result.stderr, result.stderr


def test_verify_apk_rejects_an_unsigned_apk_with_a_deflated_model(tmp_path):
    for tool in ("apksigner", "aapt2", "dexdump", "zipalign", "unzip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; .ci/run installs it (Debian packages aapt, apksigner, dexdump, "
                        "zipalign, unzip)")
    apk = tmp_path / "broken.apk"
    with zipfile.ZipFile(apk, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("assets/manifest.json", "{}")
        archive.writestr("assets/models/speech.tflite", b"\0" * 4096)
    result = run(VERIFY_APK, apk)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert any("apksigner verify" in line for line in failed)
    assert any("assets/models/speech.tflite is compressed" in line for line in failed)
    assert any("lib/arm64-v8a/libtensorflowlite_jni.so is missing" in line for line in failed)
    assert any("dex lacks org/tflitefineprune/demo/MainActivity" in line for line in failed)
    assert "ok  assets/manifest.json" in result.stdout


def test_verify_apk_compares_the_resource_table_with_the_res_folder(tmp_path):
    """An APK whose resources are not the ones app/src/main/res declares (what Gradle would include) fails."""
    if shutil.which("aapt2") is None:
        pytest.skip("aapt2 is not installed; .ci/run installs it (Debian package aapt)")
    res = tmp_path / "res" / "values"
    res.mkdir(parents=True)
    (res / "strings.xml").write_text('<resources><string name="app_name">Fine-Prune demo</string>'
                                     '<string name="not_in_res">x</string></resources>')
    (tmp_path / "AndroidManifest.xml").write_text('<manifest package="org.tflitefineprune.demo"/>')
    subprocess.run(["aapt2", "compile", "--dir", tmp_path / "res", "-o", tmp_path / "compiled.zip"], check=True)
    subprocess.run(["aapt2", "link", "--manifest", tmp_path / "AndroidManifest.xml", "-o", tmp_path / "res.apk",
                    tmp_path / "compiled.zip"], check=True, capture_output=True)
    result = run(VERIFY_APK, tmp_path / "res.apk")
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [line for line in result.stderr.splitlines() if "resource table differs" in line]
    assert "declared entries missing (color/launcher_background" in line, line
    assert "1 not declared (string/not_in_res)" in line, line
    assert "string/app_name" not in line.split("not declared")[1]


def test_versions_live_only_in_versions_properties():
    """The Gradle build, the Maven build and the scripts read versions.properties; none repeats a version."""
    versions = dict(line.split("=", 1) for line in (DEMO / "versions.properties").read_text().splitlines()
                    if line and not line.startswith("#"))
    pinned = {key: value for key, value in versions.items() if key.endswith(".version")}
    assert {"kotlin.version", "tflite.version", "r8.version", "agp.version"} <= set(pinned)
    build_files = [*DEMO.glob("*.gradle.kts"), *DEMO.glob("*/*.gradle.kts"), *DEMO.glob("pom.xml"),
                   *DEMO.glob("*/pom.xml"), *DEMO.glob("*.sh")]
    for path in build_files:
        text = path.read_text()
        for key, value in pinned.items():
            assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", text), f"{path.name} repeats {key}"
    gradle_app = (DEMO / "app" / "build.gradle.kts").read_text()
    for key in ("android.minSdk", "android.targetSdk", "app.id", "tflite.version"):
        assert f'versionOf("{key}")' in gradle_app
    assert "org.tensorflow:tensorflow-lite:" in gradle_app and "com.google.ai.edge.litert:litert:" not in gradle_app
