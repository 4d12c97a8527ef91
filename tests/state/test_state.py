"""State files: round trip, atomic writes, and refusal of bad files without damage."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.synthetic import synthetic_inputs
from tflite_fineprune import FinePruneError, Personalizer, State
from tflite_fineprune import safe_io, state as state_format
from tflite_fineprune.levers import normalization as normalization_lever


@pytest.fixture
def personalized(exports, tmp_path):
    x = synthetic_inputs("plain_cnn", 30)
    personalizer = Personalizer(exports.path("plain_cnn"))
    personalizer.observe(x)
    personalizer.prune(0.3)
    path = tmp_path / "user.state"
    personalizer.save_state(path)
    return personalizer, path, x


def test_round_trip_into_fresh_interpreter(exports, personalized):
    personalizer, path, x = personalized
    fresh = Personalizer(exports.path("plain_cnn"))
    fresh.load_state(path)
    assert fresh.samples == personalizer.samples
    for name, mask in personalizer.masks.items():
        np.testing.assert_array_equal(fresh.masks[name], mask)
        np.testing.assert_array_equal(fresh.activity[name], personalizer.activity[name])
    np.testing.assert_array_equal(fresh.predict(x), personalizer.predict(x))
    assert fresh.sparsity() == personalizer.sparsity()


def _assert_untouched(personalizer, before):
    after = personalizer.get_state()
    np.testing.assert_array_equal(after.masks, before.masks)
    np.testing.assert_array_equal(after.counts, before.counts)
    assert after.samples == before.samples


@pytest.mark.parametrize("damage", ["truncate", "flip", "pad", "empty", "random", "magic", "version"])
def test_bad_state_file_is_refused_and_state_kept(personalized, tmp_path, damage):
    personalizer, path, _ = personalized
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[:len(blob) // 2]
    elif damage == "flip":
        blob[60] ^= 0x01
    elif damage == "pad":
        blob += b"\0"
    elif damage == "empty":
        blob = b""
    elif damage == "random":
        blob = np.random.default_rng(0).integers(0, 256, len(blob), dtype=np.uint8).tobytes()
    elif damage == "magic":
        blob[:8] = b"NOTSTATE"
    elif damage == "version":
        blob[8] = 99
    bad = tmp_path / "bad.state"
    bad.write_bytes(bytes(blob))
    personalizer.reset()
    before = personalizer.get_state()
    with pytest.raises(FinePruneError):
        personalizer.load_state(bad)
    _assert_untouched(personalizer, before)


def test_state_of_another_model_is_refused(exports, personalized):
    _, path, _ = personalized
    other = Personalizer(exports.path("residual_separable"))
    before = other.get_state()
    with pytest.raises(FinePruneError, match="another model"):
        other.load_state(path)
    _assert_untouched(other, before)


def test_missing_state_file(personalized, tmp_path):
    personalizer, _, _ = personalized
    with pytest.raises(FinePruneError, match="does not exist"):
        personalizer.load_state(tmp_path / "nope.state")


def test_failed_save_keeps_previous_file(personalized, monkeypatch):
    personalizer, path, _ = personalized
    original = path.read_bytes()
    personalizer.reset()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safe_io.os, "replace", broken_replace)
    with pytest.raises(FinePruneError, match="No space left"):
        personalizer.save_state(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".fineprune-")] == []


def test_save_into_missing_folder(personalized, tmp_path):
    personalizer, _, _ = personalized
    with pytest.raises(FinePruneError, match="cannot write"):
        personalizer.save_state(tmp_path / "no" / "such" / "dir.state")


def test_set_state_rejects_invalid_masks(personalized):
    personalizer, _, _ = personalized
    state = personalizer.get_state()
    with pytest.raises(FinePruneError, match="0 or 1"):
        personalizer.set_state(State(state.masks * 0.5, state.counts, state.samples))
    first = personalizer.groups[0]
    masks = state.masks.copy()
    masks[first.offset:first.offset + first.units] = 0
    with pytest.raises(FinePruneError, match="at least one"):
        personalizer.set_state(State(masks, state.counts, state.samples))


@settings(max_examples=60, deadline=None)
@given(units=st.integers(1, 300), samples=st.integers(0, 10**7).map(float), seed=st.integers(0, 2**32 - 1))
def test_encode_decode_round_trip(units, samples, seed):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 2, units).astype(np.float32)
    counts = (rng.random(units) * samples).astype(np.float32)
    fingerprint = "ab" * 32
    blob = state_format.encode_state(fingerprint, State(masks, counts, samples))
    decoded = state_format.decode_state(blob, fingerprint, units)
    np.testing.assert_array_equal(decoded.masks, masks)
    np.testing.assert_array_equal(decoded.counts, counts)
    assert decoded.samples == samples


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_detected(data):
    units = 17
    blob = bytearray(state_format.encode_state("cd" * 32, State(np.ones(units), np.arange(units), 20.0)))
    position = data.draw(st.integers(0, len(blob) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != blob[position]))
    blob[position] = value
    with pytest.raises(FinePruneError):
        state_format.decode_state(bytes(blob), "cd" * 32, units)


def test_format_is_documented_layout():
    blob = state_format.encode_state("00" * 32, State(np.array([1, 0, 1]), np.array([1.5, 0, 2]), 3.0))
    assert blob[:8] == b"FPSTATE\0"
    assert int.from_bytes(blob[8:10], "little") == 2  # version 2: normalization vectors (flag bit 2) exist
    assert int.from_bytes(blob[12:16], "little") == 3
    assert np.frombuffer(blob, "<f8", 1, 48)[0] == 3.0
    assert list(blob[56:59]) == [1, 0, 1]
    assert len(blob) == 56 + 5 * 3 + 4


def test_compensated_state_round_trip(exports, tmp_path):
    x = synthetic_inputs("plain_cnn", 30)
    personalizer = Personalizer(exports.path("plain_cnn", mean_compensation=True))
    personalizer.observe(x)
    personalizer.prune(0.3)
    path = tmp_path / "mc.state"
    personalizer.save_state(path)
    assert len(path.read_bytes()) == 56 + 17 * personalizer.metadata.num_units + 4  # + sums, fill, magnitudes
    fresh = Personalizer(exports.path("plain_cnn", mean_compensation=True))
    fresh.load_state(path)
    np.testing.assert_array_equal(fresh.get_state().fill, personalizer.get_state().fill)
    np.testing.assert_array_equal(fresh.predict(x), personalizer.predict(x))
    plain = Personalizer(exports.path("plain_cnn"))
    plain.save_state(tmp_path / "plain.state")
    with pytest.raises(FinePruneError, match="another model|mean-compensation"):
        fresh.load_state(tmp_path / "plain.state")


@settings(max_examples=40, deadline=None)
@given(units=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
def test_encode_decode_with_compensation(units, seed):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 2, units).astype(np.float32)
    values = [rng.random(units).astype(np.float32) for _ in range(3)]
    blob = state_format.encode_state("ef" * 32, State(masks, values[0], 7.0, values[1], values[2]))
    decoded = state_format.decode_state(blob, "ef" * 32, units, blocks={"mean_compensation": ()})
    for got, want in zip((decoded.counts, decoded.sums, decoded.fill), values):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(FinePruneError, match="mean-compensation"):
        state_format.decode_state(blob, "ef" * 32, units, blocks={})


def test_another_models_file_is_named_before_its_size_is_judged():
    """A file whose vectors fit another model is that model's, not "truncated or padded" (issue #15)."""
    rng = np.random.default_rng(0)
    norm = {f: rng.random(7).astype(np.float32) + 0.1 for f in normalization_lever.FIELDS}
    blob = state_format.encode_state("cd" * 32, State(np.ones(9, np.float32), np.zeros(9, np.float32), 2.0, **norm))
    with pytest.raises(FinePruneError, match="belongs to another model") as raised:
        # this model: 5 units, 3 BN channels
        state_format.decode_state(blob, "ab" * 32, 5, blocks={"normalization_shift": (3,)})
    assert "truncated" not in str(raised.value) and "9 units" in str(raised.value)
    with pytest.raises(FinePruneError, match="truncated or padded.*another model"):
        state_format.decode_state(blob[:-10], "ab" * 32, 5, blocks={"normalization_shift": (3,)})
    damaged = bytearray(blob)
    damaged[20] ^= 1  # a flipped fingerprint bit in this model's own file is damage, not another model
    with pytest.raises(FinePruneError, match="checksum mismatch"):
        state_format.decode_state(bytes(damaged), "cd" * 32, 9, blocks={"normalization_shift": (7,)})
