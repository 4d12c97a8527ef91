"""`couple_depthwise=True`: a layer and the depthwise layer it feeds share one unit group.

Unit c is channel c of both layers, masked (and counted) after the depthwise
chain. The references are Keras models, independent of the planner: the
depthwise chain's output for activity, the depthwise chain's BatchNorm zeroed
for pruning.
"""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from keras import layers

from tests import zoo
from tests.test_slim import assert_same_outputs
from tflite_fineprune import FinePruneError, Personalizer, export_model
from tflite_fineprune.state import State

COUPLED = {"couple_depthwise": True}


def depthwise_partner(name):
    first, _, second = name.partition("+")
    return second or first


def test_mobilenet_layout(exports):
    separate = Personalizer(exports.path("mobilenet_v2")).metadata
    coupled = Personalizer(exports.path("mobilenet_v2", **COUPLED)).metadata
    names = {g.name: g for g in coupled.groups}
    depthwise = [g.name for g in separate.groups if g.layer_class == "DepthwiseConv2D"]
    assert len(depthwise) == 17
    for name in depthwise:  # every depthwise layer joins the layer before it, the stride-2 blocks' padding too
        block = name.rsplit("_", 1)[0]
        producer = "Conv1" if block == "expanded_conv" else f"{block}_expand"
        group = names[f"{producer}+{name}"]
        assert group.layer_class == "Conv2D+DepthwiseConv2D"
        assert group.units == next(g.units for g in separate.groups if g.name == name)
    assert not any(g.layer_class == "DepthwiseConv2D" for g in coupled.groups)
    assert coupled.num_units == separate.num_units - sum(g.units for g in separate.groups
                                                         if g.layer_class == "Conv2D" and
                                                         (g.name == "Conv1" or g.name.endswith("_expand")))
    assert coupled.fingerprint != separate.fingerprint
    # The units' costs cover both layers: more weights per unit than the expansion alone.
    expand = next(g for g in separate.groups if g.name == "block_3_expand")
    pair = names["block_3_expand+block_3_depthwise"]
    assert pair.weights_per_unit > expand.weights_per_unit


def test_masks_on_match_keras(exports, inputs):
    model = exports.model("mobilenet_v2")
    x = inputs("mobilenet_v2")
    expected = np.asarray(model(x, training=False))
    personalizer = Personalizer(exports.path("mobilenet_v2", **COUPLED), backend="litert")
    assert np.max(np.abs(personalizer.predict(x, batch_size=7) - expected)) <= 1e-4
    assert np.max(np.abs(personalizer.observe(x) - expected)) <= 1e-4


def test_activity_is_the_depthwise_chains(exports, inputs):
    model = exports.model("mobilenet_v2")
    x = inputs("mobilenet_v2", count=20)
    personalizer = Personalizer(exports.path("mobilenet_v2", **COUPLED))
    personalizer.observe(x)
    hidden = [g.name for g in personalizer.groups if g.role == "hidden"]
    reference = zoo.keras_activity(model, [depthwise_partner(n) for n in hidden], x)
    for name in hidden:
        np.testing.assert_allclose(personalizer.activity[name], reference[depthwise_partner(name)], atol=2e-3,
                                   err_msg=name)


def test_pruning_removes_the_pair_as_keras_would(exports, inputs, tmp_path):
    model = exports.model("mobilenet_v2")
    x = inputs("mobilenet_v2", count=16)
    personalizer = Personalizer(exports.path("mobilenet_v2", **COUPLED))
    personalizer.observe(x)
    personalizer.prune(0.4)
    masks = {depthwise_partner(name): mask for name, mask in personalizer.masks.items()}
    expected = np.asarray(zoo.zero_units(model, masks)(x, training=False))
    got = personalizer.predict(x)
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert np.max(np.abs(got - np.asarray(model(x, training=False)))) > 1e-3

    report = personalizer.slim(tmp_path / "slim.tflite")
    assert not report.still_masked
    assert_same_outputs(got, Personalizer(tmp_path / "slim.tflite").predict(x), "coupled slim at 0.4")
    # Both layers lost the pair's pruned channels: the expansion's filters and the depthwise filter.
    kept = int(personalizer.masks["block_3_expand+block_3_depthwise"].sum())
    filters = {tuple(t["shape"]) for t in Interpreter(str(tmp_path / "slim.tflite")).get_tensor_details()
               if len(t["shape"]) == 4}
    assert any(s[0] == kept and s[-1] != kept for s in filters)  # expansion: [kept, 1, 1, in]
    assert any(s[0] == 1 and s[-1] == kept for s in filters)  # depthwise: [1, 3, 3, kept]


def test_one_pruned_unit_removes_both_layers_weights(exports):
    model = exports.model("mobilenet_v2")
    personalizer = Personalizer(exports.path("mobilenet_v2", **COUPLED))
    group = next(g for g in personalizer.groups if g.name == "block_3_expand+block_3_depthwise")
    masks = np.ones(personalizer.metadata.num_units, np.float32)
    masks[group.offset] = 0
    personalizer.set_state(State(masks, np.zeros_like(masks), 0.0))
    expand, depthwise = zoo.find_layer(model, "block_3_expand"), zoo.find_layer(model, "block_3_depthwise")
    project = zoo.find_layer(model, "block_3_project")
    per_unit = (expand.kernel.shape[2] + 4  # expansion filter (no bias) + its BatchNorm
                + np.prod(depthwise.kernel.shape[:2]) + 4  # 3x3 depthwise filter + its BatchNorm
                + project.kernel.shape[3])  # the projection's input row
    sparsity = personalizer.sparsity()
    assert sparsity.total_weights - sparsity.remaining_weights == per_unit


def _block(project_merges):
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 4))
    x = layers.ReLU()(layers.Conv2D(8, 1, name="expand")(inp))
    x = layers.ReLU()(layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x))
    if project_merges:
        x = layers.Add()([x, layers.Conv2D(8, 1, name="side")(inp)])
    x = layers.Conv2D(6, 1, activation="relu", name="project")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(3, name="head")(x))


def test_pair_whose_depthwise_feeds_a_merge_stays_separate(tmp_path):
    model = _block(project_merges=True)
    coupled = export_model(model, tmp_path / "c.tflite", prune_outputs=False, couple_depthwise=True).metadata
    separate = export_model(model, tmp_path / "s.tflite", prune_outputs=False).metadata
    assert [g.name for g in coupled.groups] == [g.name for g in separate.groups] == ["expand", "project"]
    assert "depthwise" in dict(coupled.excluded)
    merged = export_model(_block(project_merges=False), tmp_path / "m.tflite", prune_outputs=False,
                          couple_depthwise=True).metadata
    assert [g.name for g in merged.groups] == ["expand+depthwise", "project"]


def test_state_of_the_other_form_is_refused(exports, tmp_path):
    separate = Personalizer(exports.path("mobilenet_v2"))
    state = tmp_path / "separate.state"
    separate.save_state(state)
    coupled = Personalizer(exports.path("mobilenet_v2", **COUPLED))
    with pytest.raises(FinePruneError, match="another model"):
        coupled.load_state(state)


def test_cli_export_flag(tmp_path):
    from tests.cli import cli_output

    keras_path = tmp_path / "block.keras"
    _block(project_merges=False).save(keras_path)
    model = tmp_path / "block.tflite"
    cli_output("export", keras_path, "-o", model, "--couple-depthwise")
    listing = cli_output("inspect", model)
    assert "expand+depthwise" in listing and "Conv2D+DepthwiseConv2D" in listing  # whole, not cut to the column
