"""Buffer renumbering, the export's compact steps and slim's dead-op removal, on tiny hand-built models."""

import numpy as np
import pytest

from tests.tflite.tiny import Tiny, run
from tflite_fineprune.tflite.compaction import STEPS, compact_buffers, compact_model, drop_unused, remove_identities
from tflite_fineprune.tflite.graph import Graph
from tflite_fineprune.tflite.schema import set_metadata, write_model


def _model():
    """x + a + b (a, b identical constants), an empty-buffer tensor, a stale buffer, a metadata entry."""
    tiny = Tiny()
    x = tiny.tensor([1, 3])
    a, b = tiny.const([1.0, 2.0, 3.0]), tiny.const([1.0, 2.0, 3.0])
    stale = tiny.schema.BufferT()
    stale.data = np.frombuffer(b"never read", np.uint8)
    tiny.model.buffers.insert(1, stale)  # referenced by nothing
    for t in tiny.sub.tensors:
        t.buffer += t.buffer > 0
    empty = tiny.schema.BufferT()
    tiny.model.buffers.append(empty)
    y = tiny.binary("ADD", x, a)
    tiny.sub.tensors[y].buffer = len(tiny.model.buffers) - 1  # the converter's own empty buffer for an activation
    out = tiny.binary("ADD", y, b)
    model = tiny.finish([x], [out])
    set_metadata(model, "note", b"kept")
    return model


def test_slim_renumbering_drops_unreferenced_buffers_and_keeps_the_order():
    model = _model()
    before = [bytes(np.asarray(b.data if b.data is not None else [], np.uint8)) for b in model.buffers]
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    expected = run(write_model(model), x)
    compact_buffers(model)
    after = [bytes(np.asarray(b.data if b.data is not None else [], np.uint8)) for b in model.buffers]
    assert b"never read" not in after
    assert after == [c for c in before if c != b"never read"]  # same order, nothing shared
    assert model.metadata[0].buffer == after.index(b"kept")
    np.testing.assert_array_equal(run(write_model(model), x)[0], expected[0])


def test_export_renumbering_shares_identical_constants_and_empty_buffers():
    model = _model()
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    expected = run(write_model(model), x)
    compact_model(model, ["buffers"])
    tensors = model.subgraphs[0].tensors
    assert tensors[1].buffer == tensors[2].buffer != 0  # a and b: one buffer
    assert tensors[3].buffer == 0  # the activation's empty buffer: the schema's "no buffer"
    assert len(model.buffers) == 3 and model.metadata[0].buffer == 1  # buffer 0, metadata first, one constant
    np.testing.assert_array_equal(run(write_model(model), x)[0], expected[0])


def test_compact_model_drops_names_and_empty_quantization_and_refuses_unknown_steps():
    model = _model()
    model.subgraphs[0].tensors[0].quantization = Tiny().schema.QuantizationParametersT()
    compact_model(model, STEPS)
    assert all(t.name is None for t in model.subgraphs[0].tensors)
    assert model.subgraphs[0].tensors[0].quantization is None
    with pytest.raises(ValueError, match="unknown compact steps"):
        compact_model(model, ["weights"])


def test_identities_and_dead_ops_go():
    tiny = Tiny()
    x = tiny.tensor([1, 3])
    ones = tiny.binary("MUL", x, tiny.const(np.ones(3)))
    tiny.binary("ADD", x, tiny.const([5.0, 5.0, 5.0]))  # nobody reads it
    out = tiny.binary("SUB", ones, tiny.const(np.zeros(3)))
    relu = tiny.tensor([1, 3])
    tiny.op("RELU", [out], [relu])
    model = tiny.finish([x], [relu])
    graph = Graph(tiny.schema, model, 0)
    remove_identities(graph)
    remap = drop_unused(graph)
    assert [graph.names[graph.ops.index(op)] for op in graph.sub.operators] == ["RELU"]
    assert graph.sub.operators[0].inputs == [remap[x]]
    assert len(graph.sub.tensors) == 2
