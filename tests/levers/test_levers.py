"""The lever registry and each lever's runtime side, on metadata built in memory (no TensorFlow, no model).

The levers' graph side is exercised end to end by test_prune, test_normalization, test_prototypes,
test_state and test_fidelity (real conversions); here only what needs no conversion.
"""

import dataclasses
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tflite_fineprune import ExportOptions, FinePruneError, Personalizer, State, levers
from tflite_fineprune import signatures as sig
from tflite_fineprune.metadata import ModelMetadata, UnitGroup

UNITS, CLASSES, CHANNELS, FEATURES = 5, 3, 4, 2


def _metadata(**fields):
    groups = (UnitGroup("conv", "Conv2D", 2, 0, 16, "hidden", 1.0, 1.0),
              UnitGroup("dense", "Dense", CLASSES, 2, 1, "output", 1.0, 1.0))
    base = dict(format_version=1, fingerprint="ab" * 32, input_name=sig.INPUT, input_shape=(None, 4, 4, 1),
                input_dtype="float32", output_name=sig.OUTPUT, output_kind="logits", num_classes=CLASSES, labels=(),
                policy="layerwise", groups=groups, weight_layers=(), total_weights=1, total_macs=1,
                signatures=sig.REQUIRED + (sig.PRUNE_OUTPUTS, sig.PRUNE_DORMANT))
    meta = ModelMetadata(**{**base, **fields})
    # as an export lists them: every signature of the levers it carries
    return dataclasses.replace(meta, signatures=tuple(meta.signatures) + tuple(
        name for lever in levers.used(meta) for name in lever.signatures if name not in meta.signatures))


FULL = dict(mean_compensation=True, prior_correction=True, normalization_layers=(("bn", CHANNELS, 0),),
            classifier_head=("dense", FEATURES, 0.9),
            signatures=sig.REQUIRED + (sig.PRUNE_OUTPUTS, sig.PRUNE_DORMANT, sig.PRUNE_MAGNITUDE, sig.SET_MAGNITUDES))


def test_each_lever_is_one_folder_with_one_descriptor():
    option_fields = {f.name for f in dataclasses.fields(ExportOptions)}
    metadata_fields = {f.name for f in dataclasses.fields(ModelMetadata)}
    owned = [field for lever in levers.LEVERS for field in lever.metadata_fields]
    for lever in levers.LEVERS:
        folder = pathlib.Path(sys.modules[type(lever).__module__].__file__).parent
        assert folder.parent.name == "levers" and folder.name != "levers", f"{lever.name} is not in a folder"
        assert "\nGRAPH = " in (folder / f"{lever.graph}.py").read_text(encoding="utf-8"), lever.name
        assert lever.option is None or lever.option in option_fields, (lever.name, lever.option)
        assert lever.flag is None or lever.option is not None, lever.name
        assert set(lever.metadata_fields) <= metadata_fields, lever.name
    assert len(owned) == len(set(owned)), "a metadata field is owned by two levers"
    assert [lever.name for lever in levers.LEVERS] == list(levers.BY_NAME), "two levers share a name"


def test_the_runtime_side_of_the_levers_imports_no_graph_side():
    code = ("import sys, tflite_fineprune, tflite_fineprune.levers, tflite_fineprune.export.options; "
            "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras')) or m.endswith('.graph')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_every_lever_method_is_a_personalizer_method():
    for lever in levers.LEVERS:
        for name in vars(lever.methods or object):
            if not name.startswith("_"):
                assert getattr(Personalizer, name) is getattr(lever.methods, name)


def test_the_levers_name_every_signature_but_the_core_ones():
    named = {name for lever in levers.LEVERS for name in lever.signatures}
    core = {sig.INFER, sig.COLLECT, sig.RESET, sig.GET_STATE, sig.SET_STATE}
    all_signatures = {v for k, v in vars(sig).items() if k.isupper() and isinstance(v, str)
                      and (k.startswith(("SET_", "UPDATE_", "ADAPT_", "PRUNE")) or v in core)}
    # signatures.py's lever names all belong to a lever; a newer lever may keep its names in its own folder
    assert all_signatures - core <= named and not named & core


def test_which_levers_an_export_carries_follows_its_metadata():
    assert [lever.name for lever in levers.used(_metadata())] == ["activity_pruning", "class_exclusion",
                                                                  "dormant_pruning"]
    assert [lever.name for lever in levers.used(_metadata(**FULL))] == [lever.name for lever in levers.LEVERS]
    assert levers.block_shapes(_metadata(**FULL)) == {"mean_compensation": (), "prior_correction": (CLASSES,),
                                                      "normalization_shift": (CHANNELS,),
                                                      "classifier_prototypes": (CLASSES, FEATURES),
                                                      "magnitude_pruning": ()}


def _state(**fields):
    return State(masks=np.ones(UNITS, np.float32), counts=np.zeros(UNITS, np.float32), samples=0.0, **fields)


def test_feeds_check_lengths_and_values():
    meta = _metadata(**FULL)
    feed = levers.BY_NAME["prior_correction"].feed(meta, _state())
    assert feed[sig.LOG_WEIGHTS].shape == (CLASSES,) and not feed[sig.SOFT_COUNTS].any()  # missing = zeros
    with pytest.raises(FinePruneError, match=f"log_weights must be {CLASSES} finite numbers"):
        levers.BY_NAME["prior_correction"].feed(meta, _state(log_weights=[0.0, np.nan, 0.0]))
    norm = levers.BY_NAME["normalization_shift"]
    assert norm.feed(meta, _state()) is None  # a version-1 state: set_state resets to the trained statistics
    moments = {f: np.ones(CHANNELS, np.float32) for f in norm.block.fields}
    assert set(norm.feed(meta, _state(**moments))) == set(norm.block.fields)
    with pytest.raises(FinePruneError, match="variances > 0"):
        norm.feed(meta, _state(**{**moments, sig.NORM_VAR: np.zeros(CHANNELS)}))
    proto = levers.BY_NAME["classifier_prototypes"]
    given = {sig.PROTO_COUNTS: np.ones(CLASSES), sig.PROTO_SUMS: np.zeros((CLASSES, FEATURES)),
             sig.HEAD_KERNEL: np.zeros((FEATURES, CLASSES))}
    assert proto.feed(meta, _state(**given))[sig.HEAD_KERNEL].shape == (FEATURES * CLASSES,)  # 2-D accepted
    with pytest.raises(FinePruneError, match="proto_counts must be ≥ 0"):
        proto.feed(meta, _state(**{**given, sig.PROTO_COUNTS: -np.ones(CLASSES)}))


def test_slim_variables_freeze_what_each_lever_holds_in_use():
    meta = _metadata(**FULL)
    masks = np.array([1, 0, 1, 1, 1], np.float32)
    state = _state(sums=np.ones(UNITS), fill=np.full(UNITS, 2.0), head_kernel=np.arange(FEATURES * CLASSES))
    frozen = {}
    for lever in levers.LEVERS:
        frozen.update(lever.slim_variables(meta, state, masks))
    np.testing.assert_array_equal(frozen[sig.FILL], [0, 2, 0, 0, 0])  # kept units carry no fill
    assert frozen[sig.HEAD_KERNEL].shape == (FEATURES, CLASSES) and not frozen[sig.LOG_WEIGHTS].any()
    assert sig.NORM_MEAN not in frozen  # not in the state: the model's own statistics stay


@pytest.mark.parametrize("field, value, message", [
    ("normalization_layers", (("bn", 4, 1),), "offset of normalization layer 'bn'"),
    ("normalization_layers", (("bn", 0, 0),), "channels of normalization layer"),
    ("classifier_head", ("dense", 2, 1.5), "classifier_head confidence"),
    ("classifier_head", ("dense", 2), "classifier_head"),
    ("mean_compensation", 1, "mean_compensation is 1; expected true or false"),
    ("prior_correction", "yes", "prior_correction is 'yes'; expected true or false"),
])
def test_metadata_fields_of_levers_are_checked_by_their_levers(field, value, message):
    meta = dataclasses.replace(_metadata(), **{field: value})
    with pytest.raises(FinePruneError, match=message):
        meta.validate("m.tflite")
