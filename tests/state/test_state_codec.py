"""The state codec without TensorFlow or a model: golden files of every version and block still read, and
decode → encode gives the same bytes back.

tests/data/state_*.bin were written by the encoder of main at 7b57487, before the lever registry, and the
version-4 files by 4751684's (tests/data/make_golden_states.py); the version-1 files are version-2 files
without normalization with the version field set to 1, which is the layout version-1 writers produced.
"""

import dataclasses
import pathlib
import struct
import zlib

import numpy as np
import pytest

from tflite_fineprune import levers
from tflite_fineprune import state as codec
from tflite_fineprune.errors import FinePruneError

DATA = pathlib.Path(__file__).parents[1] / "data"
FP = "5a" * 32
UNITS, CLASSES, CHANNELS, FEATURES = 6, 3, 4, 2
SHAPES = {"mean_compensation": (), "prior_correction": (CLASSES,), "normalization_shift": (CHANNELS,),
          "classifier_prototypes": (CLASSES, FEATURES), "magnitude_pruning": ()}
GOLDEN = {
    "v1_core": (), "v1_compensation_priors": ("mean_compensation", "prior_correction"),
    "v2_core": (), "v2_compensation": ("mean_compensation",), "v2_priors": ("prior_correction",),
    "v2_normalization": ("normalization_shift",),
    "v2_compensation_priors_normalization": ("mean_compensation", "prior_correction", "normalization_shift"),
    "v3_prototypes": ("classifier_prototypes",),
    "v3_all": ("mean_compensation", "prior_correction", "normalization_shift", "classifier_prototypes"),
    "v4_magnitude": ("magnitude_pruning",),
    "v4_all": ("mean_compensation", "prior_correction", "normalization_shift", "classifier_prototypes",
               "magnitude_pruning"),
}


def _blob(name):
    return (DATA / f"state_{name}.bin").read_bytes()


def _with_version(blob, version):
    body = bytearray(blob[:-4])
    body[8:10] = struct.pack("<H", version)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_state_round_trips_byte_identically(name):
    blob = _blob(name)
    blocks = {lever: SHAPES[lever] for lever in GOLDEN[name]}
    state = codec.decode_state(blob, FP, UNITS, name, blocks=blocks)
    again = codec.encode_state(FP, state)
    version = struct.unpack_from("<H", blob, 8)[0]
    if version == 1:  # re-encoded as version 2, the same layout otherwise
        assert struct.unpack_from("<H", again, 8)[0] == 2
        again = _with_version(again, 1)
    assert again == blob
    for lever in GOLDEN[name]:
        for field in levers.BY_NAME[lever].block.fields:
            assert getattr(state, field) is not None


def test_older_files_load_without_the_blocks_they_predate():
    """Version 1 predates normalization, versions 1–2 prototypes: such files load into models that use them."""
    both = {"normalization_shift": (CHANNELS,), "classifier_prototypes": (CLASSES, FEATURES)}
    state = codec.decode_state(_blob("v1_core"), FP, UNITS, blocks=both)
    assert state.norm_mean is None and state.head_kernel is None
    state = codec.decode_state(_blob("v2_normalization"), FP, UNITS, blocks=both)
    assert state.norm_mean is not None and state.head_kernel is None
    with pytest.raises(FinePruneError, match="lacks normalization values"):
        codec.decode_state(_blob("v2_core"), FP, UNITS, blocks=both)
    with pytest.raises(FinePruneError, match="lacks normalization values"):
        codec.decode_state(_blob("v3_prototypes"), FP, UNITS, blocks=both)


def test_a_block_the_model_does_not_use_is_refused():
    with pytest.raises(FinePruneError, match="has mean-compensation values but the model does not use"):
        codec.decode_state(_blob("v2_compensation"), FP, UNITS, blocks={})
    with pytest.raises(FinePruneError, match="lacks class-prior values"):
        codec.decode_state(_blob("v2_core"), FP, UNITS, blocks={"prior_correction": (CLASSES,)})


def test_negative_prototype_counts_are_refused():
    blocks = {"classifier_prototypes": (CLASSES, FEATURES)}
    state = codec.decode_state(_blob("v3_prototypes"), FP, UNITS, blocks=blocks)
    bad = dataclasses.replace(state, proto_counts=-np.ones(CLASSES, np.float32))
    with pytest.raises(FinePruneError, match="negative classifier-prototype counts"):
        codec.decode_state(codec.encode_state(FP, bad), FP, UNITS, blocks=blocks)


def test_a_half_given_block_is_refused_when_encoding():
    state = codec.decode_state(_blob("v2_compensation"), FP, UNITS, blocks={"mean_compensation": ()})
    with pytest.raises(FinePruneError, match="not fill"):
        codec.encode_state(FP, dataclasses.replace(state, fill=None))


def test_a_future_version_and_unknown_flags_are_refused():
    blob = _blob("v3_all")
    with pytest.raises(FinePruneError, match="version 9"):
        codec.decode_state(_with_version(blob, 9), FP, UNITS, blocks=SHAPES)
    body = bytearray(_blob("v2_normalization")[:-4])
    body[8:10] = struct.pack("<H", 1)  # version 1 did not know the normalization flag
    with pytest.raises(FinePruneError, match="unknown flags"):
        codec.decode_state(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))), FP, UNITS, blocks=SHAPES)


def test_registry_blocks_have_distinct_flags_and_fields_of_state():
    flags = [block.flag for _, block in levers.blocks()]
    assert len(set(flags)) == len(flags) and all(f & (f - 1) == 0 for f in flags)
    state_fields = {f.name for f in dataclasses.fields(codec.State)}
    for _, block in levers.blocks():
        assert set(block.fields) <= state_fields
    assert [b.since for _, b in levers.blocks()] == sorted(b.since for _, b in levers.blocks())
