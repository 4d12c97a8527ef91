"""Dynamic-range int8 weights written into a tiny hand-built model, as the converter writes them (no TensorFlow)."""

import numpy as np
import pytest

from tests.tflite.tiny import Tiny, run
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.tflite.schema import write_model
from tflite_fineprune.tflite.types import INT8
from tflite_fineprune.tflite.weight_quantization import (MIN_ELEMENTS, check_quantize, quantize_weights,
                                                         symmetric_int8)


def test_symmetric_int8_scales_each_slice_by_its_peak():
    values = np.array([[1.0, -2.0], [0.0, 0.0], [0.5, 0.25]])
    integers, scales = symmetric_int8(values, 0)
    np.testing.assert_allclose(scales, [2 / 127, 1.0, 0.5 / 127], rtol=1e-6)
    np.testing.assert_array_equal(integers, [[64, -127], [0, 0], [127, 64]])
    assert symmetric_int8(values, None)[1].shape == (1,)


def test_large_dense_weights_become_int8_small_ones_stay_float():
    rng = np.random.default_rng(0)
    tiny = Tiny()
    x = tiny.tensor([1, 64])
    hidden = tiny.fully_connected(x, rng.normal(size=(32, 64)), rng.normal(size=32))  # 2048 weights
    out = tiny.fully_connected(hidden, rng.normal(size=(4, 32)), rng.normal(size=4))  # 128 weights
    model = tiny.finish([x], [out])
    inputs = rng.normal(size=(1, 64)).astype(np.float32)
    expected = run(write_model(model), inputs)[0]
    assert quantize_weights(tiny.schema, model) == ["t1"]
    tensors = model.subgraphs[0].tensors
    assert tensors[1].type == INT8 and len(tensors[1].quantization.scale) == 1
    assert tensors[4].type == 0 and 32 * 4 < MIN_ELEMENTS
    assert model.subgraphs[0].operators[0].builtinOptions.asymmetricQuantizeInputs
    assert model.operatorCodes[0].version == 9
    got = run(write_model(model), inputs)[0]
    np.testing.assert_allclose(got, expected, atol=0.05 * np.abs(expected).max())


def test_check_quantize_names_the_choices():
    assert check_quantize(None) is None and check_quantize("int8") == "int8"
    with pytest.raises(FinePruneError, match="float16.*int8"):
        check_quantize("float16")
