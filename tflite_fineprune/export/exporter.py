"""`export_model`: Keras 3 model → masked, self-describing `.tflite`."""

import dataclasses
import hashlib
import inspect
import os
import tempfile
import time
import warnings
from typing import Optional, Union

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads; the commands may have set 3

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .. import signatures as sig
from ..errors import FinePruneError, ModelError
from ..levers import describe as describe_levers_blocks
from ..tflite.flatbuffer import UNSEALED_DIGEST, seal
from ..metadata import FORMAT_VERSION, METADATA_NAME, ModelMetadata, UnitGroup, fingerprint, read_model_metadata
from ..sparsity import layer_cost
from ..safe_io import atomic_write
from .embed import STEPS as COMPACT_STEPS, add_metadata
from .graph import flatten_model
from .levers import EXPORT_LEVERS, configure as configure_levers
from .module import FinePruneModule, ModelParts, freeze_variables
from .options import ExportOptions
from .planner import plan_model
from .pruning_policy import POLICIES
from .quantize import (VERIFY_SAMPLES, check_quantize, check_quantized, check_representative_data,
                       configure as configure_quantization)


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What `export_model` wrote (`str()` of it is the CLI's summary).

    Attributes
    ----------
    path : str
        The `.tflite` written.
    groups, units : int
        Prunable unit groups, and their units in all.
    excluded : tuple
        (layer name, reason) of the layers left unprunable.
    file_bytes : int
        The file's size in bytes.
    seconds : float
        Wall-clock seconds the export took.
    max_abs_error : float or None
        Largest |TFLite − Keras| output difference on a random batch (None when not checked).
    metadata : ModelMetadata
        The metadata embedded in the file.
    logit_error : float or None
        For softmax outputs, the same on the log-probabilities centred per sample (logits up to a constant).
    output_spread : float or None
        How much Keras' own outputs vary on that batch: below 1e-3 the check proves little.
    """

    path: str
    groups: int
    units: int
    excluded: tuple
    file_bytes: int
    seconds: float
    max_abs_error: float
    metadata: ModelMetadata
    # Max error on the log-probabilities centred per sample (= logits up to a constant) for softmax outputs,
    # and how much Keras' own outputs vary on the random batch: a check on outputs that hardly vary
    # (untrained weights behind a softmax give ~1/classes everywhere) proves nothing.
    logit_error: float = None
    output_spread: float = None

    @property
    def check_conclusive(self):
        return self.output_spread is not None and self.output_spread >= MIN_OUTPUT_SPREAD

    def __str__(self):
        if self.max_abs_error is None:
            err = "not checked"
        else:
            err = f"{self.max_abs_error:.2e}"
            if self.logit_error is not None:
                err += f" (logits from the log-probabilities: {self.logit_error:.2e})"
            if not self.check_conclusive:
                err += (f" — inconclusive: Keras' outputs hardly vary on random inputs (spread "
                        f"{self.output_spread:.1e}, e.g. untrained weights), so agreement proves little; "
                        "compare predictions on real data")
        quantized = f" ({self.metadata.quantization})" if self.metadata.quantization else ""
        return (f"wrote {self.path}{quantized}: {self.groups} unit groups, {self.units} prunable units, "
                f"{len(self.excluded)} layers not prunable, {self.file_bytes / 1e6:.2f} MB, "
                f"{self.seconds:.1f} s, max |TFLite - Keras| on a random batch: {err}")


MIN_OUTPUT_SPREAD = 1e-3


def load_keras_model(path):
    """Load a `.keras` or `.h5` model without compiling it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"Keras model {path!r} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for unreadable files
        raise ModelError(f"cannot load Keras model {path!r}: {type(exc).__name__}: {exc}") from None


def _input_shape(graph, override):
    shape = tuple(graph.shapes[graph.inputs[0]])
    if override is not None:
        override = tuple(int(d) for d in override)
        if len(override) != len(shape) - 1:
            raise FinePruneError(f"input_shape {override} has rank {len(override)}; "
                                 f"the model expects rank {len(shape) - 1}")
        for have, want in zip(shape[1:], override):
            if have is not None and have != want:
                raise FinePruneError(f"input_shape {override} contradicts the model's input shape {shape}")
        shape = (None,) + override
    if any(d is None for d in shape[1:]):
        raise ModelError(f"the model input shape {shape} is not fixed; "
                         "pass input_shape=(...) without the batch axis")
    return shape


SUPPORTED_INPUT_DTYPES = ("float32", "uint8", "int8", "int16")


def _input_dtype(model):
    dtype = str(keras.backend.standardize_dtype(model.inputs[0].dtype))
    if dtype not in SUPPORTED_INPUT_DTYPES:
        raise ModelError(f"model input dtype {dtype} is not supported; expected one of {SUPPORTED_INPUT_DTYPES}")
    return dtype


def _weights_digest(frozen):
    h = hashlib.sha256()
    for variable, value in frozen:
        h.update(variable.path.encode("utf-8"))
        h.update(str(value.dtype).encode())
        h.update(str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _layout(plan):
    layout, offset = [], 0
    for group in plan.groups:
        layout.append(UnitGroup(group.name, group.layer_class, group.units, offset, group.positions,
                                group.role, 0.0, 0.0))
        offset += group.units
    return layout


def _with_costs(layout, weight_layers):
    """Average weights/MACs that pruning one unit of each group removes."""
    full = {i: np.ones(g.units) for i, g in enumerate(layout)}
    base = [layer_cost(w, full) for w in weight_layers]
    result = []
    for i, group in enumerate(layout):
        dead = dict(full)
        dead[i] = np.zeros(group.units)
        removed_w = removed_m = 0.0
        for w, (bw, bm) in zip(weight_layers, base):
            nw, nm = layer_cost(w, dead)
            removed_w += bw - nw
            removed_m += bm - nm
        result.append(dataclasses.replace(group, weights_per_unit=removed_w / group.units,
                                          macs_per_unit=removed_m / group.units))
    return result


def _convert(module, workdir, quantize=None):
    functions = module.concrete_functions()
    saved = os.path.join(workdir, "saved_model")
    tf.saved_model.save(module, saved, signatures=functions)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(functions))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_enable_resource_variables = True
    method = configure_quantization(converter, quantize)
    try:
        flatbuffer = converter.convert()
    except Exception as exc:
        what = f"{method} quantization" if method else "TFLite conversion"
        raise FinePruneError(f"{what} failed: {type(exc).__name__}: {str(exc)[:2000]}") from None
    check_quantized(flatbuffer, method)
    return flatbuffer, sorted(functions), method


def _centred_log(p):
    log = np.log(np.maximum(p.astype(np.float64), 1e-30))
    return log - log.mean(axis=-1, keepdims=True)


def _verify(path, model, input_shape, input_dtype, output_name, output_kind="logits", seed=0, samples=None):
    """(max abs error, max error on logits recovered from probabilities or None, spread of Keras' outputs)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None, None, None
    from ..native_logs import native_stderr

    rng = np.random.default_rng(seed)
    if samples is not None:
        x = samples
    elif np.dtype(input_dtype).kind == "f":
        x = rng.standard_normal((4, *input_shape[1:])).astype(input_dtype)
    else:
        info = np.iinfo(input_dtype)
        x = rng.integers(info.min, info.max, (4, *input_shape[1:]), endpoint=True).astype(input_dtype)
    with warnings.catch_warnings():  # models saved with list inputs warn about the structure
        warnings.simplefilter("ignore")
        expected = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    with native_stderr():  # "Created TensorFlow Lite XNNPACK delegate"
        got = Interpreter(model_path=path).get_signature_runner(sig.INFER)(**{sig.INPUT: x})[output_name]
    error = float(np.max(np.abs(got - expected)))
    # Softmax outputs: compare logits (log-probabilities up to a per-sample constant), which keep their
    # differences when the probabilities are all ~1/classes, and judge the spread on them.
    if output_kind == "probabilities":
        expected_logits = _centred_log(expected)
        logit_error = float(np.max(np.abs(_centred_log(got) - expected_logits)))
        spread = float(np.ptp(expected_logits))
    else:
        logit_error, spread = None, float(np.ptp(expected))
    return error, logit_error, spread


def export_model(model: Union[keras.Model, str, os.PathLike], path: Union[str, os.PathLike],
                 options: Optional[ExportOptions] = None, **changes) -> ExportReport:
    """Export a Keras 3 classifier to a personalizable `.tflite` (written atomically at `path`).

    `model` is a built Sequential/functional model or the path of a
    `.keras`/`.h5` file. `options` (an `ExportOptions`, which documents each
    one) says how; keyword arguments change single fields of it, e.g.
    `export_model(model, "m.tflite", prune_outputs=False, quantize="int8")`.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        A built Sequential or functional Keras 3 classifier, or the path of a `.keras`/`.h5` file.
    path : str or os.PathLike
        The `.tflite` to write (atomically).
    options : ExportOptions, optional
        How to export (default: `ExportOptions()`).
    **changes
        Single fields of `options` to change (`ExportOptions`' names), e.g. `prune_outputs=False`.

    Returns
    -------
    ExportReport
        What was written, with the check of TFLite's outputs against Keras' on a random batch.

    Raises
    ------
    ModelError
        When the Keras model cannot be loaded, holds a layer the exporter does not know or has no prunable
        units.
    InputError
        When `representative_data` or `reference_data` cannot be used.
    FinePruneError
        When an option is invalid or `path` may not be written.
    """
    options = (options or ExportOptions()).with_changes(**changes)
    start = time.perf_counter()
    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model)
    if options.policy not in POLICIES:
        raise FinePruneError(f"unknown policy {options.policy!r}; expected one of {', '.join(POLICIES)}")
    _stage(options.on_stage, "trace", start)
    traced = _trace(model, options)
    module = FinePruneModule(traced.parts, traced.levers)
    _stage(options.on_stage, "convert", start)
    from ..native_logs import native_stderr

    with tempfile.TemporaryDirectory(prefix="fineprune-export-") as workdir, native_stderr():
        flatbuffer, names, quantization = _convert(module, workdir, traced.quantize)
    metadata = _metadata(model, traced, options, names, quantization)
    blob = seal(add_metadata(flatbuffer, METADATA_NAME, metadata.to_json(),
                             compact_steps=COMPACT_STEPS if options.compact else ()))
    metadata = read_model_metadata(blob, source=os.fspath(path))
    path = os.fspath(path)
    atomic_write(path, blob)
    _stage(options.on_stage, "verify", start)
    error, logit_error, spread = _check_export(path, model, traced, options, quantization)
    return ExportReport(path, len(traced.parts.layout), metadata.num_units, tuple(traced.parts.plan.excluded),
                        len(blob), time.perf_counter() - start, error, metadata, logit_error, spread)


# export_model's signature shows every option, from ExportOptions' one definition.
export_model.__signature__ = inspect.Signature(
    list(inspect.signature(export_model).parameters.values())[:3]
    + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                         annotation=f.type) for f in dataclasses.fields(ExportOptions)],
    return_annotation=ExportReport)


@dataclasses.dataclass(frozen=True)
class _Traced:
    """The model prepared for the module: its parts, the levers' configurations, and the checked data."""

    parts: ModelParts
    levers: dict
    representative_data: object
    quantize: object


def _trace(model, options):
    """Flatten and plan the model, check the options against it, and configure the levers."""
    graph = flatten_model(model)
    if len(graph.inputs) == 1:
        shape = _input_shape(graph, options.input_shape)
        graph.shapes[graph.inputs[0]] = shape
        if options.input_shape is not None:
            _resolve_shapes(graph, shape, model.inputs[0].dtype)
    plan = plan_model(graph, prune_outputs=options.prune_outputs, couple_depthwise=options.couple_depthwise)
    shape = graph.shapes[graph.inputs[0]]
    num_classes = int(graph.shapes[graph.outputs[0]][-1])
    if options.labels is not None and len(options.labels) != num_classes:
        raise FinePruneError(f"got {len(options.labels)} labels but the model has {num_classes} outputs")
    if not plan.groups:
        raise ModelError(
            "the model has no prunable units: " + "; ".join(f"{n}: {r}" for n, r in plan.excluded[:10])
        )
    frozen = freeze_variables(model)
    layout = _with_costs(_layout(plan), plan.weight_layers)
    input_dtype = _input_dtype(model)
    quantize = check_quantize(options.quantize)
    representative_data = options.representative_data
    if representative_data is not None:
        if quantize is None:
            raise FinePruneError("representative_data is only used with quantize='int8'")
        representative_data = check_representative_data(representative_data, shape, input_dtype)
    levers = configure_levers(graph, options, input_dtype)
    parts = ModelParts(graph, plan, tuple(layout), frozen, tuple(shape), input_dtype, num_classes)
    return _Traced(parts, levers, representative_data, quantize)


def _metadata(model, traced, options, names, quantization):
    """The metadata of the export (before the file's digest is sealed in)."""
    parts = traced.parts
    graph, plan, layout, shape = parts.graph, parts.plan, parts.layout, parts.input_shape
    lever_fields = {}
    layout_key = [[g.name, g.units, g.role] for g in layout] + [list(shape[1:]), options.policy,
                                                               bool(options.mean_compensation),
                                                               bool(options.prior_correction)]
    for cls in EXPORT_LEVERS:
        if cls.lever.name in traced.levers:
            config = traced.levers[cls.lever.name]
            lever_fields.update(cls.metadata_fields(config, graph))
            part = cls.fingerprint_part(config, graph)
            if part is not None:  # only then, so that exports without the lever keep their fingerprints
                layout_key.append(part)
    if quantization:  # other weights: a float model's state must not load into it
        layout_key.append(quantization)
    if options.couple_depthwise:  # as above; the group names already differ wherever a pair was coupled
        layout_key.append("couple_depthwise")
    metadata = ModelMetadata(
        format_version=FORMAT_VERSION,
        fingerprint=fingerprint(_weights_digest(parts.frozen), layout_key),
        input_name=sig.INPUT,
        input_shape=tuple(shape),
        input_dtype=parts.input_dtype,
        output_name=sig.OUTPUT,
        output_kind=plan.output_kind,
        num_classes=parts.num_classes,
        labels=tuple(str(label) for label in options.labels or ()),
        policy=options.policy,
        groups=tuple(layout),
        weight_layers=tuple(plan.weight_layers),
        total_weights=int(model.count_params()),
        total_macs=int(plan.total_macs),
        signatures=tuple(names),
        excluded=tuple(plan.excluded),
        int16_scale=float(options.int16_scale),
        sample_rate=int(options.sample_rate),
        content_sha256=UNSEALED_DIGEST,
        quantization=quantization,
        **lever_fields,
    )
    # Each lever's state-block layout, so that readers (the phone's codec too) need no table of their own.
    return dataclasses.replace(metadata, state_blocks=describe_levers_blocks(metadata))


def _check_export(path, model, traced, options, quantization):
    """(error, logit error, spread) of the written file against Keras; refuse an export that does not match."""
    samples = None
    if quantization and traced.representative_data is not None:
        # Rounded weights differ from Keras by design: report the error on the user's samples.
        samples = traced.representative_data[:VERIFY_SAMPLES]
    parts = traced.parts
    try:
        error, logit_error, spread = (_verify(path, model, parts.input_shape, parts.input_dtype, sig.OUTPUT,
                                              parts.plan.output_kind, samples=samples)
                                      if options.verify else (None, None, None))
    except RuntimeError as exc:  # an int8 kernel refused its input
        if not quantization:
            raise
        os.remove(path)
        raise ModelError(f"the model cannot be quantized ({quantization}): the int8 file fails to run: "
                         f"{str(exc).strip()[:300]}; export it without quantize") from None
    if quantization:
        logit_error = None  # leave the accuracy of rounded weights to the user's own evaluation
    elif error is not None and error > 1e-3:
        raise FinePruneError(f"exported model differs from Keras by {error:.3g} on a random batch; please report this")
    if logit_error is not None and logit_error > 1e-2:
        raise FinePruneError(f"exported model's logits differ from Keras' by {logit_error:.3g} on a random batch; "
                             "please report this")
    return error, logit_error, spread


def _stage(on_stage, name, start):
    """Tell `on_stage` (when given) that stage `name` begins, with the seconds spent so far."""
    if on_stage is not None:
        on_stage(name, time.perf_counter() - start)


def _resolve_shapes(graph, shape, dtype="float32"):
    """Static shapes of every tensor for a model built with unknown spatial sizes."""
    spec = keras.KerasTensor(shape, dtype=dtype)
    try:
        values = graph.evaluate([spec], lambda node, args, kwargs: node.layer.compute_output_spec(*args, **kwargs))
    except Exception as exc:
        raise ModelError(f"the model does not accept input_shape {shape[1:]}: {exc}") from None
    for tid, value in values.items():
        graph.shapes[tid] = tuple(value.shape)
