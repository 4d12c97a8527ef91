"""Which units are prunable: residual Adds, SE Multiplies, nesting, shared layers."""

import keras
import numpy as np
import pytest
from keras import layers

from tests import zoo
from tests.realdata import cifar_images
from tflite_fineprune import FinePruneError, Personalizer, export_model

WEIGHT_LAYERS = (layers.Conv1D, layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Dense)


def reaches_merge(layer):
    """Independent check: does the unit's masked tensor reach a merge before a weight layer?"""
    stack = [zoo.chain_end(layer)[-1]]
    while stack:
        current = stack.pop()
        for node in current._outbound_nodes:
            op = node.operation
            if isinstance(op, (layers.Add, layers.Multiply)):
                return True
            if not isinstance(op, WEIGHT_LAYERS):
                stack.append(op)
    return False


@pytest.mark.parametrize("name", ["residual_separable", "mobilenet_v2"])
def test_units_feeding_merges_are_excluded(exports, name):
    model = exports.model(name)
    meta = Personalizer(exports.path(name)).metadata
    grouped = {g.name for g in meta.groups}
    excluded = dict(meta.excluded)
    for layer in zoo.all_layers(model):
        if not isinstance(layer, WEIGHT_LAYERS) or layer.name == model.layers[-1].name:
            continue
        if reaches_merge(layer):
            assert layer.name in excluded and "merges" in excluded[layer.name], layer.name
        else:
            assert layer.name in grouped, layer.name
    assert grouped and excluded


def test_mobilenet_layout(exports):
    meta = Personalizer(exports.path("mobilenet_v2")).metadata
    names = {g.name for g in meta.groups}
    assert "block_16_expand" in names and "block_16_depthwise" in names
    assert "block_2_project" not in names and "block_2_project" in dict(meta.excluded)
    assert "expanded_conv_project" in names  # block 0's output feeds no Add


def test_squeeze_excite_and_ops(tmp_path):
    keras.utils.set_random_seed(7)
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(inp)
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Dense(4, activation="relu", name="squeeze")(s)
    s = layers.Dense(8, name="excite")(s)
    s = layers.Activation("hard_sigmoid")(s * 1.0 + 0.0)  # Keras ops on tensors, as in MobileNetV3
    x = layers.Multiply()([x, s])
    x = layers.Conv2D(6, 1, activation="relu", name="after")(x)
    x = layers.Concatenate()([x, layers.Conv2D(4, 1, activation="relu", name="side")(x)])
    x = layers.Flatten()(layers.MaxPooling2D(4)(x))
    out = layers.Dense(3, name="head")(x)
    model = keras.Model(inp, out)
    report = export_model(model, tmp_path / "se.tflite", prune_outputs=False)  # hidden groups only
    meta = report.metadata
    assert [g.name for g in meta.groups] == ["squeeze", "after", "side"]
    excluded = dict(meta.excluded)
    assert "Multiply" in excluded["features"] and "merges" in excluded["excite"]
    x = cifar_images(2, size=16)[:, :, :, :3]
    np.testing.assert_allclose(Personalizer(report.path).predict(x), np.asarray(model(x)), atol=1e-4)
    head = next(w for w in meta.weight_layers if w.name == "head")
    # Flatten after concat: 'after' and 'side' channels each repeat over 4x4 positions.
    assert head.in_segments == ((1, 6, 16), (2, 4, 16))


def test_nested_model_is_inlined(exports):
    meta = Personalizer(exports.path("nested_backbone")).metadata
    assert len(meta.groups) == 3
    assert meta.groups[0].layer_class == "Conv2D" and meta.groups[-1].layer_class == "Dense"


def test_shared_layer_is_refused(tmp_path):
    inp = keras.Input((8,))
    shared = layers.Dense(8, activation="relu")
    out = layers.Dense(2)(shared(shared(inp)))
    with pytest.raises(FinePruneError, match="more than once"):
        export_model(keras.Model(inp, out), tmp_path / "x.tflite")


def test_channels_first_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3, 8, 8)), layers.Conv2D(4, 3, data_format="channels_first"),
                              layers.Flatten(), layers.Dense(2)])
    with pytest.raises(FinePruneError, match="channels_last"):
        export_model(model, tmp_path / "x.tflite")


def _flattened_head():
    """A MobileNetV3-style head: a 1x1 Conv2D of logits, then Flatten and softmax."""
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(16, 3, activation="relu")(inp)
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Conv2D(10, 1, name="logits")(x)
    return keras.Model(inp, layers.Activation("softmax")(layers.Flatten()(x)))


def test_default_export_keeps_classes_fixed_where_the_output_cannot_be_pruned(tmp_path):
    model = _flattened_head()
    report = export_model(model, tmp_path / "head.tflite")  # the default does not refuse the model
    p = Personalizer(tmp_path / "head.tflite")
    assert p.metadata.output_group is None and "prune_outputs" not in p.metadata.signatures
    assert any("not prunable" in reason for _, reason in report.excluded)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(p.predict(x), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(FinePruneError, match="prune_outputs=True needs"):
        export_model(model, tmp_path / "strict.tflite", prune_outputs=True)
