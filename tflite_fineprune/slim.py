"""Write a user's personalized model as a plain `.tflite` without the pruned units.

The export keeps every unit and multiplies pruned ones by 0, so it costs as
much as the dense model. `slim_model` fixes the masks of a state file, cuts
the pruned channels out of the `infer` graph (`tflite.channel_plan`) and drops
everything personalization needs (the other signatures, the variables);
`quantize="int8"` then stores the large weights as int8
(`tflite.weight_quantization`). It needs numpy, flatbuffers and LiteRT's
schema module, not TensorFlow, nor an interpreter.
"""

import contextlib
import dataclasses
import os
import zlib

import numpy as np

from . import signatures as sig
from .errors import ModelError, SlimError, StateError
from .levers import LEVERS, used
from .metadata import METADATA_NAME, ROLE_HIDDEN, read_model_file
from .sparsity import measure_sparsity
from .state import MAX_STATE_BYTES, State, check_counters, decode_model_state, encode_state
from .safe_io import atomic_write, read_file
from .tflite.channel_plan import ChannelPlan, Unslimmable, trace_source
from .tflite.compaction import compact_buffers, drop_unused, remove_identities
from .tflite.flatbuffer import UNSEALED_DIGEST, seal
from .tflite.folding import find_masks, fold_constants, init_subgraph, initial_values
from .tflite.graph import Graph
from .tflite.schema import PARSE_ERRORS, load_schema, read_model, set_metadata, write_model
from .tflite.weight_quantization import DYNAMIC_RANGE, MIN_ELEMENTS, check_quantize, quantize_weights


@dataclasses.dataclass(frozen=True)
class SlimReport:
    """What `slim_model` wrote.

    Attributes
    ----------
    path : str
        The slim file.
    dense_bytes, slim_bytes : int
        File sizes in bytes of the export and of the slim file.
    kept_units : dict
        Unit group name → the units left in the file.
    still_masked : dict
        Unit group name → why its pruned units could not be removed exactly (they stay as a constant mask, so
        the outputs are unchanged).
    weight_sparsity, mac_sparsity : float
        Fractions of the weights and of the multiply-accumulates removed, in [0, 1].
    quantization : str
        The file's: "" float, or "int8-dynamic-range" (its own export's or slim's).
    quantized_tensors : tuple of str
        The weight tensors slim itself stored as int8 (none for an int8 export).
    """

    path: str
    dense_bytes: int
    slim_bytes: int
    kept_units: dict
    still_masked: dict
    weight_sparsity: float
    mac_sparsity: float
    quantization: str = ""  # the file's: "" float, or "int8-dynamic-range" (its own export's or slim's)
    quantized_tensors: tuple = ()  # weight tensors slim itself stored as int8 (none for an int8 export)


def _load_state(state, metadata, source):
    if isinstance(state, State):
        return state
    blob = read_file(state, "state file", max_bytes=MAX_STATE_BYTES, error=StateError)
    return decode_model_state(blob, metadata, source=os.fspath(state))


def _as_the_model_holds(data, metadata, state, source):
    """`state` as the model holds it after `set_state` (what `get_state` then returns).

    Each lever completes its own block (`Lever.as_held`): a state without one
    (e.g. a version-1 file without BatchNorm statistics) means the values the
    model's variable initializers hold.
    """
    masks, counts = np.asarray(state.masks, np.float32), np.asarray(state.counts, np.float32)
    samples = float(np.float32(state.samples))
    check_counters(counts, samples, "state")
    initial = {}

    def trained():
        if not initial:
            initial.update(_trained_values(data, source))
        return initial

    fields = {}
    for lever in used(metadata):
        fields.update(lever.as_held(metadata, state, trained))
    return State(masks=masks, counts=counts, samples=samples, **fields)


def _trained_values(data, source):
    """{variable name: initial value} read from the model's variable initializers."""
    schema = load_schema()
    model = read_model(data, source)
    infer = [d for d in model.signatureDefs if d.signatureKey.decode() == sig.INFER]
    index = init_subgraph(Graph(schema, model, infer[0].subgraphIndex)) if infer else None
    if index is None:
        raise ModelError("the model's infer signature initializes no variables; is this a fine-prune export?")
    return initial_values(Graph(schema, model, index))


def _variables(metadata, state):
    masks = np.asarray(state.masks, np.float32)
    if masks.shape != (metadata.num_units,) or not np.all((masks == 0) | (masks == 1)):
        raise StateError(f"state masks must be {metadata.num_units} values of 0 or 1, got shape {masks.shape}")
    for group in metadata.groups:
        if not masks[group.offset:group.offset + group.units].any():
            raise StateError(f"the state prunes every unit of {group.name!r}; at least one must stay")
    variables = {"masks": masks, "counts": np.asarray(state.counts, np.float32),
                 "samples": np.array([state.samples], np.float32)}
    for lever in LEVERS:  # what each lever holds in use becomes a constant like the masks
        variables.update(lever.slim_variables(metadata, state, masks))
    return variables


def _rewrite(data, metadata, variables, keep_masked, source):
    """One attempt: the slim `ModelT`, removing every pruned hidden group not in `keep_masked`."""
    schema = load_schema()
    model = read_model(data, source)
    infer = [d for d in model.signatureDefs if d.signatureKey.decode() == sig.INFER]
    if not infer:
        raise ModelError("the model has no 'infer' signature")
    signature = infer[0]
    graph = Graph(schema, model, signature.subgraphIndex)
    slices = fold_constants(graph, variables)
    masks = find_masks(graph, slices, metadata.groups)
    producers = graph.producers()
    source_dead, source_groups = {}, {}
    for index, group in enumerate(metadata.groups):
        dead = variables["masks"][group.offset:group.offset + group.units] == 0
        if group.role != ROLE_HIDDEN or not dead.any() or index in keep_masked:
            continue
        if index not in masks:
            raise Unslimmable({index}, "its mask multiplication was not found in the infer graph")
        sources = trace_source(graph, masks[index][1], producers)
        if not sources:
            raise Unslimmable({index}, "no convolution or dense layer produces it through per-channel ops")
        for op in sources:
            previous = source_dead.get(op, np.zeros(len(dead), bool))
            if len(previous) != len(dead):
                raise Unslimmable({index}, "its producing layer is shared with a group of another size")
            source_dead[op] = previous | dead
            source_groups.setdefault(op, set()).add(index)
    for op, dead in source_dead.items():
        if dead.all():  # groups sharing this layer keep different units: keep one channel, its masks stay
            group = metadata.groups[min(source_groups[op])]
            dead[int(np.flatnonzero(variables["masks"][group.offset:group.offset + group.units])[0])] = False
    ChannelPlan(graph, source_dead, source_groups).run()
    remove_identities(graph)
    remap = drop_unused(graph)
    model.subgraphs = [graph.sub]
    for entry in list(signature.inputs) + list(signature.outputs):
        entry.tensorIndex = remap[entry.tensorIndex]
    signature.subgraphIndex = 0
    model.signatureDefs = [signature]
    return schema, model


def _with_metadata(model, blob):
    set_metadata(model, METADATA_NAME, blob)
    compact_buffers(model)


def _quantize(schema, model, metadata, model_path):
    """int8 weights for a float export's slim `ModelT`; an int8 export's are int8 already."""
    if metadata.quantization:
        return ()
    quantized = tuple(quantize_weights(schema, model))
    if not quantized:
        raise SlimError(f"cannot quantize the slim model of {model_path}: every weight tensor left has fewer "
                        f"than {MIN_ELEMENTS} elements (dynamic-range int8 only quantizes larger ones, as the "
                        "TFLite converter does); slim it without quantize")
    return quantized


def _slim(data, metadata, state, model_path):
    """(schema, slim `ModelT`, state as held, variables, {group kept masked: reason})."""
    state = _as_the_model_holds(data, metadata, state, model_path)
    variables = _variables(metadata, state)
    keep_masked = {}
    while True:
        try:
            schema, model = _rewrite(data, metadata, variables, keep_masked, model_path)
            return schema, model, state, variables, keep_masked
        except Unslimmable as exc:
            new = exc.groups - set(keep_masked)
            if not new:
                raise SlimError(f"cannot slim {model_path}: {exc.reason}") from None
            keep_masked.update({g: exc.reason for g in new})


@contextlib.contextmanager
def _not_an_export(model_path):
    """A model that passed every check on its bytes (`check_structure`) and still breaks the rewrite: its
    operators, shapes and metadata do not fit together as an export's do (a crafted or damaged and re-sealed
    file). Said as a `FinePruneError`, the original exception chained, so that a bug of ours stays findable."""
    try:
        yield
    except (PARSE_ERRORS + (ZeroDivisionError,)) as exc:
        raise ModelError(
            f"cannot slim {model_path}: its graph or metadata is not what export_model writes "
            f"({type(exc).__name__}: {exc}); export the model again (if this file came straight from export_model, "
            "please report it: it is a bug)") from exc


def slim_model(model_path: "str | os.PathLike", state: "str | os.PathLike | State", output_path: "str | os.PathLike",
               quantize: "str | None" = None) -> "SlimReport":
    """Write `output_path`: `model_path` personalized by `state`, pruned units removed.

    Parameters
    ----------
    model_path : str or path
        A `.tflite` written by `export_model` (not a slim one).
    state : str, path or State
        A state file saved for this model, or a `State`.
    output_path : str or path
        Written atomically; has only the `infer` signature.
    quantize : {None, "int8"}
        "int8": weight tensors of at least 1024 elements stored as int8
        (dynamic range, float activations), as `export_model(quantize="int8")`
        does, without TensorFlow (`weight_quantization`). An int8 export's
        slim file is int8 either way.

    Returns
    -------
    SlimReport
        What was written.

    Raises
    ------
    ModelError
        When the model is not an export (or is already slim).
    StateError
        When the state does not belong to the model.
    SlimError
        When the slim model cannot be quantized as asked. A group whose pruned units cannot be removed
        exactly is no error: it stays masked (`SlimReport.still_masked`).
    FinePruneError
        When LiteRT's schema is missing or `output_path` may not be written.
    """
    load_schema()  # fail first, with what to install, where LiteRT is missing
    quantize = check_quantize(quantize)
    model_path = os.fspath(model_path)
    data, metadata = read_model_file(model_path)
    if metadata.slim:
        raise ModelError(f"{model_path} is already slim (pruned units removed); slim the original export instead")
    state = _load_state(state, metadata, "state")
    with _not_an_export(model_path):
        schema, model, state, variables, keep_masked = _slim(data, metadata, state, model_path)
        quantized = _quantize(schema, model, metadata, model_path) if quantize else ()
    quantization = metadata.quantization or (DYNAMIC_RANGE if quantized else "")
    masks = variables["masks"]
    kept = {g.name: [int(u) for u in np.flatnonzero(masks[g.offset:g.offset + g.units])] for g in metadata.groups}
    still_masked = {metadata.groups[g].name: reason for g, reason in sorted(keep_masked.items())}
    crc = zlib.crc32(encode_state(metadata.fingerprint, state))  # identifies the state, however it was given
    slim_info = {"from_fingerprint": metadata.fingerprint, "state_crc32": crc, "kept_units": kept,
                 "still_masked": still_masked}
    slim_meta = dataclasses.replace(metadata, signatures=(sig.INFER,), slim=slim_info, quantization=quantization,
                                    content_sha256=UNSEALED_DIGEST)
    with _not_an_export(model_path):
        _with_metadata(model, slim_meta.to_json())
        blob = seal(write_model(model, len(data)))
    atomic_write(output_path, blob)
    sparsity = measure_sparsity(metadata, masks)
    return SlimReport(path=os.fspath(output_path), dense_bytes=len(data), slim_bytes=len(blob), kept_units=kept,
                      still_masked=still_masked, weight_sparsity=sparsity.weights, mac_sparsity=sparsity.macs,
                      quantization=quantization, quantized_tensors=quantized)
