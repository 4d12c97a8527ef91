"""The self-description embedded in every exported `.tflite` file.

It is stored as UTF-8 JSON under the flatbuffer metadata name
`METADATA_NAME`, so any FlatBuffers reader (the Android app included) can find
the unit groups, their offsets in the flat mask vector, and what each unit
costs in weights and MACs.
"""

import dataclasses
import hashlib
import json

from .errors import FinePruneError
from .flatbuffer import read_metadata

METADATA_NAME = "tflite_fineprune"
FORMAT_NAME = "tflite-fineprune"
FORMAT_VERSION = 1

ROLE_HIDDEN = "hidden"
ROLE_OUTPUT = "output"

# The in-graph pruning policies an export may carry (export/pruning_policy.py implements them).
POLICY_NAMES = ("layerwise", "global")


@dataclasses.dataclass(frozen=True)
class UnitGroup:
    """The prunable units (channels or dense units) of one Keras layer.

    Attributes
    ----------
    name : str
        Keras layer name.
    layer_class : str
        Keras class name (`Conv2D`, `Dense`, ...).
    units : int
        Number of units; the group's slice of the flat mask vector is
        `[offset, offset + units)`.
    offset : int
    positions : int
        Spatial positions per sample of the masked tensor (1 for Dense).
    role : str
        `"hidden"` (pruned by `prune`) or `"output"` (class units, pruned by
        `prune_outputs`).
    weights_per_unit, macs_per_unit : float
        Weights and multiply-accumulates that pruning one unit removes from its
        own layer and from the layers reading it, on average over the group.
    """

    name: str
    layer_class: str
    units: int
    offset: int
    positions: int
    role: str
    weights_per_unit: float
    macs_per_unit: float


@dataclasses.dataclass(frozen=True)
class WeightLayer:
    """One layer holding weights, wired to the unit groups it reads and writes.

    `in_segments` lists `[group index or None, channels, repeat]` along the
    layer's input feature axis (`repeat` > 1 after Flatten). `kind` is
    `"dense"` (every input channel meets every output unit) or `"depthwise"`
    (output channel `o` reads input channel `o // depth_multiplier`).
    """

    name: str
    kind: str
    out_group: object
    out_channels: int
    in_segments: tuple
    depth_multiplier: int
    kernel_positions: int
    output_positions: int
    params_per_output: int


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    format_version: int
    fingerprint: str
    input_name: str
    input_shape: tuple
    input_dtype: str
    output_name: str
    output_kind: str
    num_classes: int
    labels: tuple
    policy: str
    groups: tuple
    weight_layers: tuple
    total_weights: int
    total_macs: int
    signatures: tuple
    excluded: tuple = ()
    int16_scale: float = 0.0  # > 0: int16 input is accepted and multiplied by this (e.g. PCM / 32768)
    sample_rate: int = 0  # audio models: the rate (Hz) their input is sampled at
    mean_compensation: bool = False  # pruned hidden units output their frozen mean activation
    prior_correction: bool = False  # outputs reweighted by EM-estimated user class priors
    # Relative AdaBN: (BN layer name, channels, offset) into the flat normalization vectors; () = not exported.
    normalization_layers: tuple = ()

    @property
    def normalization_channels(self):
        return sum(int(n[1]) for n in self.normalization_layers)

    @property
    def num_units(self):
        return sum(g.units for g in self.groups)

    @property
    def hidden_groups(self):
        return tuple(g for g in self.groups if g.role == ROLE_HIDDEN)

    @property
    def output_group(self):
        for group in self.groups:
            if group.role == ROLE_OUTPUT:
                return group
        return None

    def to_json(self):
        body = dataclasses.asdict(self)
        body["format"] = FORMAT_NAME
        return json.dumps(body, sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, blob, source="model"):
        try:
            body = json.loads(blob.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FinePruneError(f"{source}: the tflite-fineprune metadata is not valid JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
            raise FinePruneError(f"{source}: metadata {METADATA_NAME!r} does not describe a tflite-fineprune model")
        version = body.get("format_version")
        if version != FORMAT_VERSION:
            raise FinePruneError(
                f"{source}: metadata format version {version!r} is not supported "
                f"(this tflite-fineprune reads version {FORMAT_VERSION})"
            )
        try:
            body.pop("format")
            body["groups"] = tuple(UnitGroup(**g) for g in body["groups"])
            body["weight_layers"] = tuple(
                WeightLayer(**{**w, "in_segments": tuple(tuple(s) for s in w["in_segments"])})
                for w in body["weight_layers"]
            )
            body["input_shape"] = tuple(body["input_shape"])
            for key in ("labels", "signatures", "excluded", "normalization_layers"):
                body[key] = tuple(tuple(v) if isinstance(v, list) else v for v in body.get(key) or ())
            meta = cls(**body)
        except (KeyError, TypeError) as exc:
            raise FinePruneError(f"{source}: tflite-fineprune metadata is incomplete ({exc})") from None
        meta.validate(source)
        return meta

    def validate(self, source="model"):
        offset = 0
        for group in self.groups:
            if group.offset != offset or group.units < 1:
                raise FinePruneError(f"{source}: unit group {group.name!r} has an inconsistent offset or size")
            offset += group.units
        roles = [g.role for g in self.groups]
        if roles.count(ROLE_OUTPUT) > 1 or any(r not in (ROLE_HIDDEN, ROLE_OUTPUT) for r in roles):
            raise FinePruneError(f"{source}: unit groups have unknown or repeated roles {roles}")


def fingerprint(weights_digest, layout):
    """A digest identifying the model's weights and unit layout, for state files."""
    h = hashlib.sha256()
    h.update(weights_digest.encode("ascii"))
    h.update(json.dumps(layout, sort_keys=True).encode("utf-8"))
    return h.hexdigest()


def read_model_metadata(data, source="model"):
    """Parse the embedded metadata of an exported model's bytes."""
    entries = read_metadata(data, source)
    if METADATA_NAME not in entries:
        raise FinePruneError(
            f"{source} is a TFLite model but not a tflite-fineprune export "
            f"(no {METADATA_NAME!r} metadata; found {sorted(entries) or 'none'}). "
            "Export it with `tflite-fineprune export`."
        )
    return ModelMetadata.from_json(entries[METADATA_NAME], source)
