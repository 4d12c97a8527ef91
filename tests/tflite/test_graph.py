"""The subgraph view and constant folding, on tiny hand-built models (no TensorFlow)."""

import numpy as np
import pytest

from tests.tflite.tiny import RESOURCE, Tiny
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.tflite.folding import find_masks, fold_constants, init_subgraph, initial_values
from tflite_fineprune.tflite.graph import Graph
from tflite_fineprune.tflite.types import INT8, quantization_parameters


def test_graph_names_ops_reads_constants_and_dequantizes_int8_weights():
    tiny = Tiny()
    x = tiny.tensor([1, 4])
    weights = np.arange(12, dtype=np.int8).reshape(3, 4) - 6
    w = tiny.tensor([3, 4], weights, np.int8)
    scales = np.array([0.5, 0.25, 2.0])
    tiny.sub.tensors[w].quantization = quantization_parameters(tiny.schema, scales, 0)
    out = tiny.tensor([1, 3])
    tiny.op("FULLY_CONNECTED", [x, w, -1], [out], tiny.schema.FullyConnectedOptionsT())
    relu = tiny.tensor([1, 3])
    tiny.op("RELU", [out], [relu])
    graph = Graph(tiny.schema, tiny.finish([x], [relu]), 0)

    assert graph.names == ["FULLY_CONNECTED", "RELU"]
    assert graph.const(x) is None and graph.const(-1) is None
    np.testing.assert_array_equal(graph.const(w), weights)
    np.testing.assert_allclose(graph.weights(w, "weights"), weights * scales[:, None])
    assert graph.producers() == {out: 0, relu: 1}
    assert graph.consumers()[out] == [1]
    graph.removed.add(1)
    assert relu not in graph.producers() and out not in graph.consumers()


def test_int8_weights_with_a_zero_point_are_refused_by_name():
    tiny = Tiny()
    w = tiny.tensor([2, 2], np.ones((2, 2)), np.int8)
    q = quantization_parameters(tiny.schema, [0.1], 0)
    q.zeroPoint = np.array([3], np.int64)
    tiny.sub.tensors[w].quantization = q
    graph = Graph(tiny.schema, tiny.finish([], []), 0)
    assert tiny.sub.tensors[w].type == INT8
    with pytest.raises(FinePruneError, match="symmetric int8.*kernel"):
        graph.weights(w, "kernel")


def test_replace_input_adds_a_constant_and_leaves_the_shared_one_alone():
    tiny = Tiny()
    x, bias = tiny.tensor([1, 3]), tiny.const([1.0, 2.0, 3.0])
    a, b = tiny.tensor([1, 3]), tiny.tensor([1, 3])
    first = tiny.op("ADD", [x, bias], [a], tiny.schema.AddOptionsT())
    tiny.op("ADD", [a, bias], [b], tiny.schema.AddOptionsT())
    graph = Graph(tiny.schema, tiny.finish([x], [b]), 0)
    new = graph.replace_input(first, 1, [7.0, 8.0], bias)
    assert first.inputs[1] == new != bias
    np.testing.assert_array_equal(graph.const(new), [7.0, 8.0])
    np.testing.assert_array_equal(graph.const(bias), [1.0, 2.0, 3.0])
    assert list(graph.sub.tensors[new].shape) == [2]


def _masked_model(units=6):
    """x → MUL by a slice of the `masks` variable (2 + units entries); the init subgraph sets the variable."""
    tiny = Tiny()
    x = tiny.tensor([1, units])
    handle = tiny.tensor([], tensor_type=RESOURCE)
    options = tiny.schema.VarHandleOptionsT()
    options.sharedName = b"masks"
    tiny.op("VAR_HANDLE", [], [handle], options)
    masks = tiny.tensor([2 + units])
    tiny.op("READ_VARIABLE", [handle], [masks])
    part = tiny.tensor([units])
    tiny.op("SLICE", [masks, tiny.const([2], np.int32), tiny.const([units], np.int32)], [part])
    out = tiny.binary("MUL", x, part)
    return tiny, x, out


def test_fold_constants_freezes_variables_and_find_masks_locates_the_group():
    tiny, x, out = _masked_model()
    graph = Graph(tiny.schema, tiny.finish([x], [out]), 0)
    masks = np.array([1, 1, 1, 0, 1, 0, 1, 1], np.float32)
    slices = fold_constants(graph, {"masks": masks})
    assert sorted(slices.values()) == [(0, 8), (2, 6)]
    assert graph.removed == {0, 1, 2}  # the handle, the read and the slice are constants now

    class Group:
        offset, units = 2, 6

    assert find_masks(graph, slices, [Group()]) == {0: (3, x)}


def test_fold_constants_refuses_a_variable_it_was_not_given():
    tiny, x, out = _masked_model()
    graph = Graph(tiny.schema, tiny.finish([x], [out]), 0)
    with pytest.raises(FinePruneError, match="'masks'"):
        fold_constants(graph, {"counts": np.zeros(8)})


def test_initial_values_reads_what_the_init_subgraph_assigns():
    tiny = Tiny()
    handle = tiny.tensor([], tensor_type=RESOURCE)
    options = tiny.schema.VarHandleOptionsT()
    options.sharedName = b"norm_mean"
    tiny.op("VAR_HANDLE", [], [handle], options)
    tiny.op("ASSIGN_VARIABLE", [handle, tiny.const([0.5, -1.0])], [])
    init = tiny.finish([], [])
    graph = Graph(tiny.schema, init, 0)
    values = initial_values(graph)
    assert list(values) == ["norm_mean"]
    np.testing.assert_array_equal(values["norm_mean"], [0.5, -1.0])

    caller = Tiny()
    call = caller.schema.CallOnceOptionsT()
    call.initSubgraphIndex = 3
    caller.op("CALL_ONCE", [], [], call)
    assert init_subgraph(Graph(caller.schema, caller.finish([], []), 0)) == 3
    assert init_subgraph(graph) is None
