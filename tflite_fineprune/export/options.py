"""`ExportOptions`: the one definition of what an export can be asked for, and of the command-line flags for it.

`export_model`, `tflite-fineprune export` and the converters (tflite_fineprune/converters/)
share it; no TensorFlow here, so the commands parse their arguments before
loading it.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Optional, Sequence

from ..errors import FinePruneError
from ..levers import export_flags

# τ of classifier prototypes: a sample's top posterior must reach this for it to count as support. 0.95
# measured better than 0.8 for CIFAR class-subset users (docs/personalization.md, "T3A prototypes").
DEFAULT_PROTOTYPE_CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How to export a Keras 3 classifier (`export_model`).

    Attributes
    ----------
    labels : sequence of str, optional
        One name per output class, embedded in the metadata.
    input_shape : tuple of int, optional
        Input shape without the batch axis, for models built with unknown
        spatial sizes.
    prune_outputs : bool or None
        Also make the output classes prunable (`prune_outputs` signature), so
        that `Personalizer.personalize` may exclude classes. None (default):
        wherever the output layer allows it (a Dense/Conv output, optionally
        followed by BatchNormalization/activation); otherwise the classes stay
        fixed and the report's excluded layers say why. True: required
        (`FinePruneError` otherwise); False: never.
    policy : {"layerwise", "global"}
        The in-graph policy of the `prune` signature.
    verify : bool
        Compare the export against Keras on a random batch (needs LiteRT).
    int16_scale : float
        When > 0, the runtime also accepts int16 input and multiplies it by
        this before feeding the float model (1 / 32768 for PCM audio).
    sample_rate : int
        For audio models, the input's sample rate in Hz: the CLI then
        resamples audio files to it.
    mean_compensation : bool
        Pruned hidden units output their mean activation instead of 0.
    prior_correction : bool
        Reweight the output by the user's class priors, estimated without
        labels by EM (`update_priors` signature; `Personalizer.correct_priors`).
    reference_data : array, optional
        Unlabeled model inputs representative of the model's population (not
        of any one user). When given and the model has BatchNormalization
        layers, their input moments over it are embedded and the export gains
        `adapt_normalization` (relative AdaBN; export/normalization.py).
    on_stage : callable, optional
        Called as `on_stage(name, seconds_so_far)` when each stage begins
        ("trace", "convert", "verify"): the commands print these, as a large
        model takes a minute.
    quantize : {None, "int8"}
        "int8": int8 weights, float activations and routine (dynamic range);
        see docs/quantization.md.
    representative_data : array-like, optional
        With quantize: samples `[N, *input_shape]` like the user's data; the
        report's error is measured on (up to 64 of) them instead of a
        random batch.
    compact : bool
        Drop what the converter writes but nothing runs (tensor names, empty
        buffers and quantization tables; tflite/compaction.py). Off only to
        measure what it saves (benchmarks/file_size.py).
    classifier_prototypes : bool
        T3A-style classifier adjustment (export/prototypes.py): `collect` also
        sums the user's normalised penultimate features per pseudo-labelled
        class, and `adapt_classifier(strength)` blends the final Dense kernel
        toward those prototypes. The model must end in a Dense layer
        (optionally followed by an activation). Off by default: the state
        grows by 2·C·D + C floats (C classes, D features into that layer),
        e.g. 1,290 for ResNet-8 (C = 10, D = 64), 20,490 for a 1024-feature
        10-class MLP.
    prototype_confidence : float
        τ in [0, 1]: only samples whose top class posterior reaches it add
        support (a constant of the file).
    couple_depthwise : bool
        One unit group for a layer and the depthwise convolution it feeds
        (MobileNet's expansion and depthwise filter, a DS-CNN's pointwise and
        the next depthwise): unit c is channel c of both, masked and counted
        once after the depthwise chain, which makes `infer` and `collect`
        cheaper on MobileNets (docs/performance.md). Off by default: the
        units are then each layer's own channels, as in every measured table.
    magnitude_pruning : bool
        `collect` also sums each hidden unit's mean |activation|, and
        `prune_magnitude(sparsity)` prunes by that times the unit's outgoing
        weight norm (the next layer's BatchNorm folded in); `personalize`
        uses it to decide how far to prune (docs/personalization.md). On by
        default; the state grows by one float per unit.
    """

    labels: Optional[Sequence[str]] = None
    input_shape: Optional[Sequence[int]] = None
    prune_outputs: Optional[bool] = None
    policy: str = "layerwise"
    verify: bool = True
    int16_scale: float = 0.0
    sample_rate: int = 0
    mean_compensation: bool = False
    prior_correction: bool = False
    reference_data: Any = None
    on_stage: Optional[Callable[[str, float], None]] = None
    quantize: Optional[str] = None
    representative_data: Any = None
    compact: bool = True
    classifier_prototypes: bool = False
    prototype_confidence: float = DEFAULT_PROTOTYPE_CONFIDENCE
    couple_depthwise: bool = False
    magnitude_pruning: bool = True

    def with_changes(self, **changes) -> "ExportOptions":
        """A copy with some fields changed; an unknown name is refused, listing the known ones."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise FinePruneError(f"unknown export option(s) {', '.join(unknown)}; expected some of "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


def _shape(text):
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 96,96,3, got {text!r}") from None


# The command-line flags of the export options: field → (flag, argparse keywords). The default of each is
# ExportOptions' own (--no-verify's is left out, so that --help does not show "default: True" for it). The flags
# of the levers' options come from their descriptors (tflite_fineprune/levers/<name>/: `Lever.flag`).
_CORE_FLAGS = {
    "input_shape": ("--input-shape", dict(type=_shape, help="input shape without batch, e.g. 96,96,3")),
    "verify": ("--no-verify", dict(action="store_false", help="skip the Keras-vs-TFLite check")),
    "quantize": ("--quantize", dict(choices=("int8",), help="int8 weights (dynamic range; docs/quantization.md)")),
    "representative_data": ("--representative-data",
                            dict(help=".npy samples [N, *input_shape] to check the int8 export on")),
    "couple_depthwise": ("--couple-depthwise", dict(
        action="store_true", help="one unit group for a layer and the depthwise layer it feeds (faster on "
                                  "MobileNets; docs/performance.md)")),
}
FLAGS = {**_CORE_FLAGS, **{field: (flag.flag, flag.keywords) for field, flag in export_flags().items()}}


def add_export_arguments(parser: argparse.ArgumentParser, fields: Sequence[str] = tuple(FLAGS)) -> None:
    """Add the flags of the export options `fields` (default: all of them) to `parser`."""
    defaults = ExportOptions()
    for field in fields:
        flag, keywords = FLAGS[field]
        default = argparse.SUPPRESS if keywords.get("action") == "store_false" else getattr(defaults, field)
        parser.add_argument(flag, dest=field, default=default, **keywords)


def options_from_arguments(args: argparse.Namespace, **fixed) -> ExportOptions:
    """The `ExportOptions` of parsed flags (those `add_export_arguments` added), with `fixed` fields on top.

    A `--representative-data` file is loaded here (which imports TensorFlow's side of the package).
    """
    given = {field: getattr(args, field) for field in FLAGS if hasattr(args, field)}
    if given.get("representative_data") is not None:
        from .quantize import load_representative_file

        given["representative_data"] = load_representative_file(given["representative_data"])
    return ExportOptions().with_changes(**{**given, **fixed})
