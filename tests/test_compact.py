"""The export's compact step (tflite/compaction.py) shrinks the file and changes nothing it computes."""

import numpy as np
import pytest

from tests import zoo
from tests.synthetic import synthetic_inputs
from tflite_fineprune import FinePruneError, Personalizer, export_model, read_model_metadata
from tflite_fineprune.tflite.schema import read_model

NAME = "conv1d_audio"  # BatchNormalization (adapt_normalization), separable conv, GELU: most signatures


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same model exported without and with the compact step, with every optional signature."""
    model = zoo.ZOO[NAME]()
    reference = synthetic_inputs(NAME, 24, seed=1)
    directory = tmp_path_factory.mktemp("compact")
    paths = {}
    for compact in (False, True):
        paths[compact] = directory / f"{NAME}-{'compact' if compact else 'plain'}.tflite"
        export_model(model, paths[compact], reference_data=reference, prior_correction=True,
                     mean_compensation=True, compact=compact)
    return paths[False], paths[True]


def routine(path, x):
    """Every signature the runtime drives, in order; returns what each produced."""
    p = Personalizer(path)
    out = {"dense": p.predict(x)}
    p.observe(x)
    out["activity"] = np.concatenate([p.activity[g.name] for g in p.groups])
    p.adapt_normalization(0.5)
    out["adapted"] = p.predict(x)
    p.prune(0.3)
    p.prune_dormant(0.01)
    p.prune_outputs(0.05)
    state = p.get_state()
    out["masks"], out["counts"] = state.masks, state.counts
    out["pruned"] = p.predict(x)
    p.correct_priors(x)
    out["priors"] = p.predict(x)
    p.reset()
    p.set_state(state)
    out["restored"] = p.predict(x)
    return out


def test_compact_keeps_every_signature_bit_identical(pair):
    plain, compact = pair
    x = synthetic_inputs(NAME, 24, seed=2)
    before, after = routine(plain, x), routine(compact, x)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_compact_file_is_smaller_and_sealed(pair):
    plain, compact = pair
    data = compact.read_bytes()
    assert len(data) < 0.9 * plain.stat().st_size
    meta = read_model_metadata(data)  # verifies the content digest
    assert meta.fingerprint == read_model_metadata(plain.read_bytes()).fingerprint  # states are interchangeable
    model = read_model(data)
    tensors = [t for s in model.subgraphs for t in s.tensors]
    assert all(t.name is None and (t.quantization is None or t.quantization.scale is not None) for t in tensors)
    # Only buffer 0 is empty among the buffers tensors use; the metadata entries still name their own buffers.
    used = {int(t.buffer) for t in tensors}
    assert all(model.buffers[b].data is not None and len(model.buffers[b].data) for b in used - {0})
    assert {m.name for m in model.metadata} >= {b"tflite_fineprune", b"min_runtime_version"}
    # A changed byte in the compacted file is still caught by the seal.
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 1
    with pytest.raises(FinePruneError):
        read_model_metadata(bytes(corrupted))


def test_state_of_the_plain_file_loads_into_the_compact_one(pair, tmp_path):
    plain, compact = pair
    x = synthetic_inputs(NAME, 24, seed=3)
    p = Personalizer(plain)
    p.observe(x)
    p.prune(0.3)
    p.save_state(tmp_path / "s.state")
    q = Personalizer(compact)
    q.load_state(tmp_path / "s.state")
    np.testing.assert_array_equal(q.predict(x), p.predict(x))


def test_unknown_step_is_refused():
    from tflite_fineprune.tflite.compaction import compact_model

    with pytest.raises(ValueError, match="unknown compact steps"):
        compact_model(None, ["weights"])
