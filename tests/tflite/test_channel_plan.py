"""The channel plan removes masked units of a tiny hand-built MLP exactly, or says why it cannot (no TensorFlow)."""

import numpy as np
import pytest

from tests.tflite.tiny import Tiny, run
from tflite_fineprune.errors import SlimError
from tflite_fineprune.tflite.channel_plan import ChannelPlan, Unslimmable, trace_source
from tflite_fineprune.tflite.compaction import compact_buffers, drop_unused, remove_identities
from tflite_fineprune.tflite.graph import Graph
from tflite_fineprune.tflite.schema import load_schema, read_model, write_model

RELU = 1  # fused activation code


def _crop(tiny, h, name):
    """`h` [1, 6] through a SLICE / STRIDED_SLICE that keeps every channel (its size / end names all 6)."""
    out = tiny.tensor([1, 6])
    if name == "SLICE":
        tiny.op("SLICE", [h, tiny.const([0, 0], np.int32), tiny.const([1, 6], np.int32)], [out])
    else:
        ends = tiny.const([1, 6], np.int32)
        tiny.op("STRIDED_SLICE", [h, tiny.const([0, 0], np.int32), ends, tiny.const([1, 1], np.int32)], [out],
                tiny.schema.StridedSliceOptionsT())
    return out


def _mlp(mask, fill=None, masked=True, crop=None):
    """x[1, 4] → dense 6 (fused ReLU) → × mask (+ fill) (→ crop) → dense 3.

    Returns (ModelT, hidden dense op, masked tensor).
    """
    rng = np.random.default_rng(0)
    tiny = Tiny()
    x = tiny.tensor([1, 4])
    hidden = tiny.fully_connected(x, rng.normal(size=(6, 4)), rng.normal(size=6), RELU)
    h = tiny.binary("MUL", hidden, tiny.const(mask)) if masked else hidden
    if fill is not None:
        h = tiny.binary("ADD", h, tiny.const(fill))
    out = tiny.fully_connected(_crop(tiny, h, crop) if crop else h, rng.normal(size=(3, 6)), rng.normal(size=3))
    return tiny.finish([x], [out]), 0, h


def _slim(model, source, tensor, dead):
    """The plan's rewrite of `model` with `dead` output channels of op `source` removed, as bytes."""
    graph = Graph(load_schema(), model, 0)
    assert trace_source(graph, tensor, graph.producers()) == {source}
    ChannelPlan(graph, {source: np.asarray(dead)}, {source: {0}}).run()
    remove_identities(graph)
    remap = drop_unused(graph)
    for entry in model.signatureDefs[0].inputs + model.signatureDefs[0].outputs:
        entry.tensorIndex = remap[entry.tensorIndex]
    compact_buffers(model)
    return write_model(model)


@pytest.mark.parametrize("fill, crop", [(None, None), ([0, 0, 0.7, 0, -1.5, 0], None), (None, "SLICE"),
                                        ([0, 0, 0.7, 0, -1.5, 0], "STRIDED_SLICE")])
def test_removed_units_change_no_output(fill, crop):
    mask = np.array([1, 1, 0, 1, 0, 1], np.float32)
    x = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32)
    model, source, tensor = _mlp(mask, fill, crop=crop)
    expected = run(write_model(model), x)[0]
    slim = _slim(model, source, tensor, mask == 0)
    np.testing.assert_allclose(run(slim, x)[0], expected, rtol=1e-5, atol=1e-6)
    weights = [t for t in read_model(slim).subgraphs[0].tensors if len(t.shape) == 2 and t.shape[0] != 1]
    assert sorted(tuple(t.shape) for t in weights) == [(3, 4), (4, 4)]  # 6 hidden units → 4
    operators = 3 if crop else 2  # the mask and the fill went into the weights
    assert len(read_model(slim).subgraphs[0].operators) == operators


def test_unmasked_removed_units_are_unslimmable():
    model, source, tensor = _mlp(np.ones(6), masked=False)
    graph = Graph(load_schema(), model, 0)
    dead = np.array([0, 0, 1, 0, 0, 0], bool)
    with pytest.raises(Unslimmable) as caught:
        ChannelPlan(graph, {source: dead}, {source: {4}}).run()
    assert caught.value.groups == {4} and "before a mask zeroes them" in caught.value.reason
    assert isinstance(caught.value, SlimError)  # a caller catching SlimError also catches this
