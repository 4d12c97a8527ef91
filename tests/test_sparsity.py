"""Weight and MAC sparsity agree with a brute-force count over the Keras weights."""

import numpy as np
import pytest

from tflite_fineprune import Personalizer


def brute_force(model, masks, wiring):
    """Count live weights/MACs: a kernel entry lives when its input and output units live.

    wiring: [(layer name, input group or None, output group or None, output positions, attached BN)]
    """
    weights = macs = 0
    for name, in_group, out_group, positions, bn in wiring:
        layer = model.get_layer(name)
        kernel = np.asarray(layer.kernel)
        n_in, n_out = kernel.shape[-2], kernel.shape[-1]
        alive_in = masks[in_group] if in_group else np.ones(n_in)
        alive_out = masks[out_group] if out_group else np.ones(n_out)
        live = np.ones(kernel.shape) * alive_in[:, None] * alive_out[None, :]
        weights += live.sum() + (alive_out.sum() if layer.use_bias else 0)
        macs += live.sum() * positions
        if bn:
            weights += model.get_layer(bn).count_params() / n_out * alive_out.sum()
    return weights, macs


PLAIN_CNN = [
    ("conv_a", None, "conv_a", 32 * 32, "bn_a"),
    ("conv_b", "conv_a", "conv_b", 16 * 16, None),
    ("conv_c", "conv_b", "conv_c", 6 * 6, "bn_c"),
    ("classes", "conv_c", None, 1, None),
]


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.6])
def test_plain_cnn_sparsity_is_exact(exports, inputs, sparsity):
    model = exports.model("plain_cnn")
    personalizer = Personalizer(exports.path("plain_cnn"))
    assert [g.name for g in personalizer.groups] == ["conv_a", "conv_b", "conv_c"]
    personalizer.observe(inputs("plain_cnn"))
    if sparsity:
        personalizer.prune(sparsity)
    masks = {k: v.astype(float) for k, v in personalizer.masks.items()}
    weights, macs = brute_force(model, masks, PLAIN_CNN)
    full_weights, full_macs = brute_force(model, {k: np.ones_like(v) for k, v in masks.items()}, PLAIN_CNN)
    s = personalizer.sparsity()
    assert s.total_weights == model.count_params() == full_weights
    assert s.total_macs == full_macs
    assert s.remaining_weights == weights
    assert s.remaining_macs == macs
    assert s.weights == pytest.approx(1 - weights / full_weights)
    assert s.macs == pytest.approx(1 - macs / full_macs)


def test_dense_only_flatten_wiring(exports, inputs):
    model = exports.model("dense_only")
    personalizer = Personalizer(exports.path("dense_only"))
    personalizer.observe(inputs("dense_only"))
    personalizer.prune(0.5)
    masks = {k: v.astype(float) for k, v in personalizer.masks.items()}
    wiring = [("hidden_1", None, "hidden_1", 1, None), ("hidden_2", "hidden_1", "hidden_2", 1, None),
              ("classes", "hidden_2", None, 1, None)]
    weights, macs = brute_force(model, masks, wiring)
    s = personalizer.sparsity()
    assert s.remaining_weights == weights and s.remaining_macs == macs


def test_per_unit_costs_in_metadata(exports):
    meta = Personalizer(exports.path("plain_cnn")).metadata
    conv_b = next(g for g in meta.groups if g.name == "conv_b")
    # own 3x3x16 kernel + bias, and its 3x3 slice in each of conv_c's 32 filters
    assert conv_b.weights_per_unit == 3 * 3 * 16 + 1 + 3 * 3 * 32
    assert conv_b.macs_per_unit == 3 * 3 * 16 * 256 + 3 * 3 * 32 * 36
