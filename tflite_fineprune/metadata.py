"""The self-description embedded in every exported `.tflite` file.

It is stored as UTF-8 JSON under the flatbuffer metadata name
`METADATA_NAME`, so any FlatBuffers reader (the Android app included) can find
the unit groups, their offsets in the flat mask vector, and what each unit
costs in weights and MACs.
"""

import dataclasses
import hashlib
import json
import math
import os
import re

from . import signatures as sig
from .errors import ModelError
from .levers import LEVERS
from .levers.activity import POLICY_NAMES  # the in-graph pruning policies an export may carry
from .levers.layout import check_descriptions
from .tflite.flatbuffer import content_digest, read_metadata
from .tflite.structure import check_structure

METADATA_NAME = "tflite_fineprune"
FORMAT_NAME = "tflite-fineprune"
FORMAT_VERSION = 1

ROLE_HIDDEN = "hidden"
ROLE_OUTPUT = "output"

OUTPUT_LOGITS = "logits"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_KINDS = (OUTPUT_LOGITS, OUTPUT_PROBABILITIES)
INPUT_DTYPES = ("float32", "uint8", "int8", "int16")
WEIGHT_LAYER_KINDS = ("dense", "depthwise")


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
    """The self-description embedded in an exported `.tflite` (`Personalizer.metadata`).

    Attributes
    ----------
    format_version : int
        The metadata format's version.
    fingerprint : str
        Hex SHA-256 identifying the export; state files carry it to refuse another model's state.
    input_name, output_name : str
        The `infer` signature's input and output names.
    input_shape : tuple
        Input shape, batch dimension first (None where free).
    input_dtype : str
        The input's numpy dtype name ("float32", "uint8", "int16").
    output_kind : str
        "logits" or "probabilities".
    num_classes : int
        Output classes.
    labels : tuple of str
        Class labels in output order (empty when none were given).
    policy : str
        The in-graph rate pruning policy ("layerwise" or "global").
    groups : tuple of UnitGroup
        The prunable unit groups, in mask-vector order.
    weight_layers : tuple of WeightLayer
        The layers with weights, and which groups they read and write (for exact weight and MAC counts).
    total_weights, total_macs : int
        Weights, and multiply-accumulates per inference, of the dense model.
    signatures : tuple of str
        The signatures the file offers.
    excluded : tuple
        Layers left unprunable, with the reason.
    int16_scale : float
        > 0: int16 input is accepted and multiplied by this (e.g. PCM / 32768).
    sample_rate : int
        Audio models: the rate (Hz) their input is sampled at; 0 otherwise.
    mean_compensation, prior_correction : bool
        Whether the export carries these levers.
    content_sha256 : str
        Digest of the whole file, checked when read; empty in files from before it existed.
    slim : dict or None
        Slim files (pruned units removed, infer only): source fingerprint, state CRC, kept units.
    quantization : str
        "" float; "int8-full-integer" or "int8-dynamic-range" (export/quantize.py).
    normalization_layers : tuple
        Relative AdaBN: (BatchNorm layer name, channels, offset) into the flat normalization vectors; () when
        not exported.
    classifier_head : tuple
        Classifier prototypes (T3A): (final Dense layer name, features D, confidence τ); () when not exported.
    state_blocks : tuple
        Each lever's state-block layout in this model (levers/layout.py); () in files exported before it.
    """

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
    content_sha256: str = ""  # flatbuffer.content_digest of the whole file; empty in files from before it existed
    slim: dict = None  # slim files (pruned units removed, infer only): source fingerprint, state CRC, kept units
    quantization: str = ""  # "" float; "int8-full-integer" or "int8-dynamic-range" (export/quantize.py)
    # Relative AdaBN: (BN layer name, channels, offset) into the flat normalization vectors; () = not exported.
    normalization_layers: tuple = ()
    # Classifier prototypes (T3A): (final Dense layer name, features D, confidence τ); () = not exported.
    classifier_head: tuple = ()
    state_blocks: tuple = ()

    @property
    def head_features(self):
        """D, the number of features into the final Dense layer, for models with classifier prototypes; else 0."""
        return int(self.classifier_head[1]) if self.classifier_head else 0

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
            raise ModelError(f"{source}: the tflite-fineprune metadata is not valid JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
            raise ModelError(f"{source}: metadata {METADATA_NAME!r} does not describe a tflite-fineprune model")
        version = body.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
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
            for key in ("labels", "signatures", "excluded", *_LEVER_TUPLE_FIELDS):
                body[key] = tuple(tuple(v) if isinstance(v, list) else v for v in body.get(key) or ())
            body["state_blocks"] = tuple(body.get("state_blocks") or ())
            meta = cls(**body)
            meta.validate(source)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{source}: tflite-fineprune metadata is incomplete or malformed "
                             f"({type(exc).__name__}: {exc})") from None
        return meta

    def validate(self, source="model"):
        """Check every field's type, range and cross-reference; raise `FinePruneError` naming the first bad one."""
        check = MetadataChecker(source)
        check.text(self.fingerprint, "fingerprint", pattern=r"[0-9a-f]{64}")
        check.text(self.input_name, "input_name")
        check.text(self.output_name, "output_name")
        check.choice(self.input_dtype, "input_dtype", INPUT_DTYPES)
        check.choice(self.output_kind, "output_kind", OUTPUT_KINDS)
        check.choice(self.policy, "policy", POLICY_NAMES)
        if not self.input_shape or self.input_shape[0] is not None and not check.is_int(self.input_shape[0]):
            check.fail("input_shape", self.input_shape, "a list starting with the batch axis (null)")
        for dim in self.input_shape[1:]:
            check.integer(dim, "input_shape", minimum=1)
        check.integer(self.num_classes, "num_classes", minimum=1)
        if self.labels and len(self.labels) != self.num_classes:
            check.fail("labels", f"{len(self.labels)} labels", f"{self.num_classes} (num_classes) or none")
        for label in self.labels:
            check.text(label, "labels", allow_empty=True)
        check.integer(self.total_weights, "total_weights", minimum=0)
        check.integer(self.total_macs, "total_macs", minimum=0)
        for name in self.signatures:
            check.text(name, "signatures")
        required = (sig.INFER,) if self.slim else sig.REQUIRED  # a slim file only predicts
        if any(name not in self.signatures for name in required):
            check.fail("signatures", list(self.signatures), f"at least {', '.join(required)}")
        for entry in self.excluded:
            if len(entry) != 2 or not all(isinstance(v, str) for v in entry):
                check.fail("excluded", entry, "[layer name, reason] pairs")
        check.number(self.int16_scale, "int16_scale", minimum=0.0)
        check.integer(self.sample_rate, "sample_rate", minimum=0)
        if self.content_sha256:
            check.text(self.content_sha256, "content_sha256", pattern=r"[0-9a-f]{64}")
        check.text(self.quantization, "quantization", allow_empty=True)
        check_descriptions(self.state_blocks, source)
        for lever in LEVERS:  # the fields each lever owns (`Lever.metadata_fields`)
            lever.validate_metadata(self, check)
        if self.slim is not None and not isinstance(self.slim, dict):
            check.fail("slim", self.slim, "an object describing the slimming, or null")
        if not self.groups:
            check.fail("groups", "none", "at least one unit group")
        offset = 0
        for group in self.groups:
            check.text(group.name, "group name")
            check.text(group.layer_class, f"layer_class of {group.name!r}")
            check.integer(group.units, f"units of {group.name!r}", minimum=1)
            check.integer(group.positions, f"positions of {group.name!r}", minimum=1)
            check.number(group.weights_per_unit, f"weights_per_unit of {group.name!r}", minimum=0.0)
            check.number(group.macs_per_unit, f"macs_per_unit of {group.name!r}", minimum=0.0)
            if not check.is_int(group.offset) or group.offset != offset:
                check.fail(f"offset of {group.name!r}", group.offset, f"{offset} (groups are contiguous)")
            offset += group.units
        roles = [g.role for g in self.groups]
        if roles.count(ROLE_OUTPUT) > 1 or any(r not in (ROLE_HIDDEN, ROLE_OUTPUT) for r in roles):
            raise ModelError(f"{source}: unit groups have unknown or repeated roles {roles}")
        if self.output_group is not None and self.output_group.units != self.num_classes:
            check.fail("output group units", self.output_group.units, f"{self.num_classes} (num_classes)")
        for layer in self.weight_layers:
            self._validate_weight_layer(layer, check)

    def _validate_weight_layer(self, layer, check):
        what = f"weight layer {layer.name!r}"
        check.text(layer.name, "weight layer name")
        check.choice(layer.kind, f"kind of {what}", WEIGHT_LAYER_KINDS)
        check.integer(layer.out_channels, f"out_channels of {what}", minimum=1)
        for field in ("depth_multiplier", "kernel_positions", "output_positions"):
            check.integer(getattr(layer, field), f"{field} of {what}", minimum=1)
        check.integer(layer.params_per_output, f"params_per_output of {what}", minimum=0)
        if layer.out_group is not None:
            check.integer(layer.out_group, f"out_group of {what}", minimum=0, maximum=len(self.groups) - 1)
            if self.groups[layer.out_group].units != layer.out_channels:
                check.fail(f"out_channels of {what}", layer.out_channels,
                           f"{self.groups[layer.out_group].units} (its group's units)")
        if not layer.in_segments:
            check.fail(f"in_segments of {what}", "none", "at least one segment")
        in_channels = 0
        for segment in layer.in_segments:
            if len(segment) != 3:
                check.fail(f"in_segments of {what}", segment, "[group or null, channels, repeat]")
            group, channels, repeat = segment
            check.integer(channels, f"in_segments channels of {what}", minimum=1)
            check.integer(repeat, f"in_segments repeat of {what}", minimum=1)
            if group is not None:
                check.integer(group, f"in_segments group of {what}", minimum=0, maximum=len(self.groups) - 1)
                if self.groups[group].units != channels:
                    check.fail(f"in_segments channels of {what}", channels, f"{self.groups[group].units}")
            in_channels += channels
        if layer.kind == "depthwise" and in_channels * layer.depth_multiplier != layer.out_channels:
            check.fail(f"out_channels of {what}", layer.out_channels,
                       f"{in_channels * layer.depth_multiplier} (input channels × depth_multiplier)")


# The levers' metadata fields that JSON holds as lists of lists (read back as tuples of tuples).
_LEVER_TUPLE_FIELDS = tuple(field for lever in LEVERS for field in lever.metadata_fields
                            if isinstance(ModelMetadata.__dataclass_fields__[field].default, tuple))


class MetadataChecker:
    """Type and range checks that raise `FinePruneError` saying what was expected and what was found.

    The levers' `validate_metadata` hooks receive one (typed as `levers.base.MetadataChecks`).
    """

    def __init__(self, source):
        self.source = source

    def fail(self, field, value, expected):
        raise ModelError(f"{self.source}: tflite-fineprune metadata field {field} is {value!r}; "
                         f"expected {expected}")

    @staticmethod
    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    def integer(self, value, field, minimum=None, maximum=None):
        if (not self.is_int(value) or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            bounds = f" ≥ {minimum}" if maximum is None else f" in [{minimum}, {maximum}]"
            self.fail(field, value, "an integer" + (bounds if minimum is not None else ""))

    def number(self, value, field, minimum=None):
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or (minimum is not None and value < minimum)):
            self.fail(field, value, "a finite number" + (f" ≥ {minimum}" if minimum is not None else ""))

    def text(self, value, field, pattern=None, allow_empty=False):
        if (not isinstance(value, str) or (not value and not allow_empty)
                or (pattern and not re.fullmatch(pattern, value))):
            self.fail(field, value, "a string" + (f" matching {pattern}" if pattern else ""))

    def choice(self, value, field, choices):
        if value not in choices:
            self.fail(field, value, f"one of {', '.join(choices)}")


def fingerprint(weights_digest, layout):
    """A digest identifying the model's weights and unit layout, for state files."""
    h = hashlib.sha256()
    h.update(weights_digest.encode("ascii"))
    h.update(json.dumps(layout, sort_keys=True).encode("utf-8"))
    return h.hexdigest()


def read_model_metadata(data: bytes, source: str = "model", verify: bool = True) -> ModelMetadata:
    """Parse the embedded metadata of an exported model's bytes.

    Parameters
    ----------
    data : bytes
        The whole `.tflite` file.
    source : str
        How messages name the file.
    verify : bool
        Hash the whole file and compare with the digest recorded at export (docs/performance.md: well under a
        second for ResNet50).

    Returns
    -------
    ModelMetadata
        The checked metadata.

    Raises
    ------
    ModelError
        When the bytes are not a TFLite flatbuffer, not a tflite-fineprune export, of an unsupported format
        version, malformed, or do not match their recorded digest.
    """
    entries = read_metadata(data, source)
    if METADATA_NAME not in entries:
        raise ModelError(
            f"{source} is a TFLite model but not a tflite-fineprune export "
            f"(no {METADATA_NAME!r} metadata; found {sorted(entries) or 'none'}); export the Keras model with "
            "export_model to personalize it"
        )
    meta = ModelMetadata.from_json(entries[METADATA_NAME], source)
    if verify and meta.content_sha256 and content_digest(bytes(data), meta.content_sha256) != meta.content_sha256:
        raise ModelError(
            f"{source} is corrupted: its content does not match the SHA-256 recorded at export "
            "(the file was damaged or edited); export it again"
        )
    return meta


# Beyond this a TFLite flatbuffer cannot be (2 GiB flatbuffer plus buffers stored after it, which
# the converter uses for very large models only); a bigger "model" is refused unread.
MAX_MODEL_BYTES = 1 << 34


def read_model_file(path, verify=True):
    """`(bytes, ModelMetadata)` of an exported model file, refusing non-TFLite files before reading them whole."""
    from .tflite.flatbuffer import TFLITE_IDENTIFIER
    from .safe_io import read_file

    data = read_file(path, "model", max_bytes=MAX_MODEL_BYTES,
                     expect_prefix=(4, TFLITE_IDENTIFIER, "is not a TFLite file"), error=ModelError)
    metadata = read_model_metadata(data, source=os.fspath(path), verify=verify)
    check_structure(data, source=os.fspath(path))  # a sealed file may still be crafted: checked before any reader
    return data, metadata
