"""Damaged files, hostile paths, odd argument types, killed writers: clear errors, nothing lost.

Inputs here are synthetic (generated models, arrays and files), so these run without the shared data.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli import one_line_error, run_cli
from tflite_fineprune import FinePruneError, Personalizer, State
from tflite_fineprune import state as state_format
from tflite_fineprune.tflite.flatbuffer import read_metadata
from tflite_fineprune.metadata import METADATA_NAME, ModelMetadata, read_model_metadata

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_OPTIONS = dict(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The zoo's Dense-only model, exported once for this module."""
    import keras
    from keras import layers

    from tflite_fineprune import export_model

    model = keras.Sequential([keras.Input((6,)), layers.Dense(12, activation="relu"),
                              layers.Dense(10, activation="relu"), layers.Dense(4)])
    path = tmp_path_factory.mktemp("hardening") / "dense.tflite"
    export_model(model, path)
    return path


@pytest.fixture
def personalizer(model_path):
    return Personalizer(model_path)


def synthetic(n=20, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


# -- the model file ------------------------------------------------------------

@settings(max_examples=120, **FIXTURE_OPTIONS)
@given(data=st.data())
def test_any_changed_byte_of_a_model_is_refused(model_path, tmp_path, data):
    blob = bytearray(model_path.read_bytes())
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= data.draw(st.integers(1, 255))
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(bytes(blob))
    with pytest.raises(FinePruneError):
        Personalizer(damaged)


def test_damaged_weights_are_refused_not_predicted(model_path, tmp_path):
    blob = bytearray(model_path.read_bytes())
    meta = read_model_metadata(bytes(blob))
    metadata_start = bytes(blob).find(b'"format": "tflite-fineprune"')
    # A byte well inside the weight buffers (before the metadata JSON), where a flip changes numbers.
    position = metadata_start // 3
    blob[position] ^= 0x40
    damaged = tmp_path / "flipped.tflite"
    damaged.write_bytes(bytes(blob))
    with pytest.raises(FinePruneError, match="corrupted.*SHA-256"):
        Personalizer(damaged)
    assert len(meta.content_sha256) == 64


def _reembed(blob, change):
    """The model with its metadata JSON changed by `change(dict)` and the digest cleared (an old, unsealed file)."""
    from tflite_fineprune.export.embed import add_metadata

    body = json.loads(read_metadata(blob)[METADATA_NAME])
    body["content_sha256"] = ""
    change(body)
    return add_metadata(blob, METADATA_NAME, json.dumps(body, sort_keys=True, indent=1).encode())


FORGERIES = {
    "units as a string": lambda b: b["groups"][0].update(units="5"),
    "bogus input dtype": lambda b: b.update(input_dtype="complex128"),
    "fingerprint not hex": lambda b: b.update(fingerprint="zz" * 32),
    "negative offset": lambda b: b["groups"][0].update(offset=-1),
    "labels not a list": lambda b: b.update(labels=7),
    "unknown role": lambda b: b["groups"][0].update(role="boss"),
    "missing groups": lambda b: b.pop("groups"),
    "weight layer reads a missing group": lambda b: b["weight_layers"][1]["in_segments"][0].__setitem__(0, 99),
    "NaN cost": lambda b: b["groups"][0].update(weights_per_unit=float("nan")),
    "sample rate as text": lambda b: b.update(sample_rate="16k"),
    "no infer signature": lambda b: b.update(signatures=["collect"]),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_metadata_is_refused_by_name(model_path, tmp_path, forgery):
    path = tmp_path / "forged.tflite"
    path.write_bytes(_reembed(model_path.read_bytes(), FORGERIES[forgery]))
    with pytest.raises(FinePruneError, match="metadata"):
        Personalizer(path)
    result = run_cli("inspect", path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(["fingerprint", "input_shape", "input_dtype", "num_classes", "labels", "policy",
                              "groups", "weight_layers", "signatures", "excluded", "int16_scale", "output_kind",
                              "mean_compensation", "total_weights"]),
       value=st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5),
                       st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers())))
def test_any_mistyped_metadata_field_is_a_clean_error(field, value):
    body = {"format": "tflite-fineprune", "format_version": 1, "fingerprint": "ab" * 32, "input_name": "x",
            "input_shape": [None, 6], "input_dtype": "float32", "output_name": "output", "output_kind": "logits",
            "num_classes": 4, "labels": [], "policy": "layerwise",
            "groups": [{"name": "d", "layer_class": "Dense", "units": 3, "offset": 0, "positions": 1,
                        "role": "hidden", "weights_per_unit": 11.0, "macs_per_unit": 10.0}],
            "weight_layers": [], "total_weights": 40, "total_macs": 40,
            "signatures": ["collect", "get_state", "infer", "prune", "reset", "set_state"], "excluded": []}
    ModelMetadata.from_json(json.dumps(body).encode())  # the unforged body is valid
    body[field] = value
    try:
        ModelMetadata.from_json(json.dumps(body).encode())
    except FinePruneError:
        pass


def test_interpreter_failures_at_first_use_are_finepruneerrors(model_path, tmp_path):
    # An unsealed (pre-digest) file whose `collect` signature name was damaged in the graph itself.
    blob = _reembed(model_path.read_bytes(), lambda body: None)
    graph_part = blob[:blob.find(b'"format": "tflite-fineprune"')]
    position = graph_part.rfind(b"collect")
    damaged = blob[:position] + b"c0llect" + blob[position + 7:]
    path = tmp_path / "renamed.tflite"
    path.write_bytes(damaged)
    with pytest.raises(FinePruneError, match="collect"):
        Personalizer(path).observe(synthetic())


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_non_regular_or_huge_paths_are_refused_unread(tmp_path, kind, personalizer):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
    else:
        path = tmp_path / "huge.tflite"
        with open(path, "wb") as f:
            f.truncate(3 << 30)  # sparse: 3 GiB that would take a long time to read
    # In a child process with a timeout: a FIFO opened for reading would block forever.
    code = textwrap.dedent(f"""
        from tflite_fineprune import FinePruneError, Personalizer
        for call in (lambda: Personalizer({str(path)!r}), lambda: P.load_state({str(path)!r})):
            try:
                P = Personalizer({str(personalizer.model_path)!r})
                call()
            except FinePruneError as exc:
                print("refused:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.count("refused:") == 2, result.stdout + result.stderr


# -- arguments and arrays ----------------------------------------------------------

@pytest.mark.parametrize("value", [-1, 0, 1.5, "8", True, [8]])
def test_bad_batch_sizes(model_path, value):
    with pytest.raises(FinePruneError, match="batch_size"):
        Personalizer(model_path, batch_size=value)
    with pytest.raises(FinePruneError, match="batch_size"):
        Personalizer(model_path).predict(synthetic(), batch_size=value)


def test_none_batch_size_means_default(model_path):
    assert Personalizer(model_path, batch_size=None).predict(synthetic(), batch_size=None).shape == (20, 4)


def test_float64_beyond_float32_is_refused_and_nothing_counted(personalizer):
    personalizer.observe(synthetic())
    before = personalizer.get_state()
    huge = synthetic().astype(np.float64)
    huge[3, 2] = 1e300  # finite as float64, infinite as float32
    with pytest.raises(FinePruneError, match="infinite"):
        personalizer.observe(huge)
    after = personalizer.get_state()
    np.testing.assert_array_equal(after.counts, before.counts)
    assert after.samples == before.samples and np.all(np.isfinite(after.counts))


def test_a_bad_batch_mid_stream_rolls_back_the_whole_call(personalizer):
    personalizer.observe(synthetic())
    before = personalizer.get_state()

    def batches():
        yield synthetic(8, 1)
        yield synthetic(8, 2)
        yield np.full((8, 6), np.nan, np.float32)

    with pytest.raises(FinePruneError, match="NaN"):
        personalizer.observe(batches())
    after = personalizer.get_state()
    np.testing.assert_array_equal(after.counts, before.counts)
    assert after.samples == before.samples


def test_observe_streams_an_iterable(personalizer):
    alive = {"now": 0, "most": 0}

    def released():
        alive["now"] -= 1

    def batches():
        for i in range(60):
            batch = synthetic(16, i)
            alive["now"] += 1
            alive["most"] = max(alive["most"], alive["now"])
            weakref.finalize(batch, released)
            yield batch

    outputs = personalizer.observe(batches(), progress=False)
    assert outputs.shape == (960, 4) and personalizer.samples == 960
    assert alive["most"] <= 3  # batches are dropped as they are used, not held all at once


@pytest.mark.parametrize("samples, counts_scale, message", [
    (1e39, 0.0, "samples observed"),
    (-1.0, 0.0, "samples observed"),
    (10.5, 0.0, "whole number"),
    (10.0, 2.0, "exceeds"),
])
def test_inconsistent_states_are_refused(personalizer, tmp_path, samples, counts_scale, message):
    personalizer.observe(synthetic(10))
    good = personalizer.get_state()
    counts = np.full_like(good.counts, 10.0 * counts_scale)
    bad = State(good.masks, counts, samples)
    with pytest.raises(FinePruneError, match=message):
        personalizer.set_state(bad)
    blob = state_format.encode_state(personalizer.metadata.fingerprint, bad)
    (tmp_path / "bad.state").write_bytes(blob)
    with pytest.raises(FinePruneError, match=message):
        personalizer.load_state(tmp_path / "bad.state")
    np.testing.assert_array_equal(personalizer.get_state().counts, good.counts)


# -- saving --------------------------------------------------------------------

def test_saved_files_respect_umask_and_keep_an_existing_mode(personalizer, tmp_path):
    old = os.umask(0o022)
    try:
        personalizer.save_state(tmp_path / "new.state")
        assert stat.S_IMODE(os.stat(tmp_path / "new.state").st_mode) == 0o644
        (tmp_path / "shared.state").write_bytes(b"old")
        os.chmod(tmp_path / "shared.state", 0o664)
        personalizer.save_state(tmp_path / "shared.state")
        assert stat.S_IMODE(os.stat(tmp_path / "shared.state").st_mode) == 0o664
    finally:
        os.umask(old)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from tflite_fineprune import Personalizer
    p = Personalizer(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[3]))
    print("ready", flush=True)
    while True:
        p.reset()
        p.observe(rng.standard_normal((int(rng.integers(1, 40)), 6)).astype(np.float32), progress=False)
        p.save_state(sys.argv[2])
""")


def _start_writer(model_path, state_path, seed):
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(model_path), str(state_path), str(seed)],
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_kill_9_during_saves_never_corrupts_and_leftovers_are_cleaned(model_path, tmp_path):
    state_path = tmp_path / "user.state"
    checker = Personalizer(model_path)
    rng = np.random.default_rng(0)
    for round_ in range(12):
        writer = _start_writer(model_path, state_path, round_)
        time.sleep(float(rng.uniform(0.05, 0.4)))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        if state_path.exists():
            checker.load_state(state_path)  # always a whole old or new file
    checker.save_state(state_path)  # the next save removes killed writers' temp files
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert leftovers == []
    checker.load_state(state_path)


def test_concurrent_writers_and_readers_never_see_a_partial_file(model_path, tmp_path):
    state_path = tmp_path / "user.state"
    Personalizer(model_path).save_state(state_path)
    writers = [_start_writer(model_path, state_path, seed) for seed in (1, 2)]
    reader = Personalizer(model_path)
    loads = 0
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            reader.load_state(state_path)
            loads += 1
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    assert loads > 50
    assert all(name.startswith(".user.state.") for name in os.listdir(tmp_path) if name.endswith(".tmp"))


# -- the command line -----------------------------------------------------------

def test_cli_decompression_bomb_is_one_line(tmp_path, exports):
    from PIL import Image

    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    Image.new("L", (20000, 20000)).save(folder / "bomb.png", optimize=False)
    result = run_cli("evaluate", exports.path("plain_cnn"), "--data", tmp_path / "data")
    assert one_line_error(result) and "bomb.png" in result.stderr, result.stderr


def test_cli_binary_labels_file_is_one_line(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    (tmp_path / "labels.txt").write_bytes(bytes(range(256)))
    result = run_cli("export", tmp_path / "m.keras", "-o", tmp_path / "m.tflite", "--labels", tmp_path / "labels.txt")
    assert one_line_error(result) and "UTF-8" in result.stderr, result.stderr


@pytest.mark.parametrize("body, message", [
    ("raise RuntimeError('boom')", "raised RuntimeError: boom"),
    ("return None", "preprocess hook returned a NoneType"),
    ("return 'text'", "preprocess hook returned a str"),
])
def test_cli_bad_preprocess_hooks_are_named(tmp_path, model_path, body, message):
    (tmp_path / "hooks.py").write_text(f"def hook(raw, path):\n    {body}\n")
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", synthetic(3))
    result = run_cli("personalize", model_path, "--data", tmp_path / "data", "--preprocess", "hooks:hook",
                     "--sparsity", "0.1", "--state", tmp_path / "u.state", cwd=tmp_path)
    assert one_line_error(result) and message in result.stderr and "x.npy" in result.stderr, result.stderr
