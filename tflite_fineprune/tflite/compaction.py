"""Shrink a TFLite `ModelT` without changing what it computes: the export's compact step and slim's clean-up.

A fine-prune export holds a dozen signature subgraphs and about a thousand
tensors; for a small model such as the MLPerf DS-CNN (~25k parameters) that
structure outweighs the weights (docs/file_size.md). The converter writes,
for every tensor, its TensorFlow op name, its own empty buffer and an empty
quantization table. None of them is needed to run the file, so the export's
`compact_model` applies these STEPS:

- ``names``: tensor names are only for humans. Nothing here, in LiteRT /
  tflite-runtime or in the Android app looks a tensor up by name: signature
  inputs and outputs are named by the SignatureDefs (kept), variables by
  VAR_HANDLE's shared_name (kept).
- ``buffers``: a tensor without data may point at buffer 0, the schema's
  "no buffer"; empty buffers then go, identical constant buffers are shared,
  and every index (tensors, metadata entries) is renumbered.
- ``quantization``: an all-empty quantization table is the same as none.

`compact_model` works in place, before the exporter adds its metadata and
seals the file, so the seal covers the compacted bytes. Slim, after its
rewrite, drops identity ops and dead ops (`remove_identities`, `drop_unused`)
and the buffers nobody reads any more (`compact_buffers`, the same buffer
renumbering the export's ``buffers`` step uses).
"""

import hashlib

import numpy as np

STEPS = ("names", "buffers", "quantization")


def compact_model(model, steps=STEPS):
    """Apply `steps` (a subset of STEPS) to the `ModelT` `model`, in place; returns it."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown compact steps {sorted(unknown)}; expected some of {STEPS}")
    tensors = [tensor for subgraph in model.subgraphs or () for tensor in subgraph.tensors or ()]
    if "names" in steps:
        for tensor in tensors:
            tensor.name = None
    if "quantization" in steps:
        for tensor in tensors:
            if tensor.quantization is not None and _empty_quantization(tensor.quantization):
                tensor.quantization = None
    if "buffers" in steps:
        compact_buffers(model, share=True)
    return model


def _empty_quantization(q):
    arrays = (q.min, q.max, q.scale, q.zeroPoint)
    return all(a is None or len(a) == 0 for a in arrays) and q.details is None


def _is_empty(buffer):
    return (buffer.data is None or len(buffer.data) == 0) and not getattr(buffer, "offset", 0)


def compact_buffers(model, share=False):
    """Keep the buffers something refers to and renumber every reference (tensors, metadata entries).

    Metadata entries keep a buffer of their own, even an empty one.
    `share=False` (slim): buffer 0 (the schema's "no buffer") and the
    referenced buffers stay, in their order; the deprecated `metadataBuffer`
    list goes. `share=True` (the export's ``buffers`` step, on the converter's
    layout only: buffer 0 empty): data-less tensors point at buffer 0, tensors
    with identical constant bytes (not variables) share one buffer, and buffers
    are numbered in order of first reference, metadata first.
    """
    buffers = model.buffers
    if share and (not buffers or not _is_empty(buffers[0])):
        return  # not the converter's layout (buffer 0 empty): leave it alone
    metadata = model.metadata or []
    tensors = [tensor for subgraph in model.subgraphs or () for tensor in subgraph.tensors or ()]
    new_index, order = _shared(model, buffers, tensors) if share else _referenced(model, tensors)
    for entry in metadata:
        entry.buffer = new_index[int(entry.buffer)]
    if share and model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[int(b)] for b in model.metadataBuffer]
    else:
        model.metadataBuffer = None
    for tensor in tensors:
        tensor.buffer = new_index[int(tensor.buffer)]
    model.buffers = [buffers[b] for b in order]


def _referenced(model, tensors):
    """({old: new}, old indices in new order): buffer 0 and every referenced buffer, in their order."""
    order = sorted({0} | {int(t.buffer) for t in tensors} | {int(m.buffer) for m in model.metadata or []})
    return {old: new for new, old in enumerate(order)}, order


def _shared(model, buffers, tensors):
    """({old: new}, old indices in new order) in order of first reference, empty and identical buffers shared."""
    new_index, order, by_content = {}, [0], {}

    def place(old, shareable):
        if old in new_index:
            return
        buffer = buffers[old]
        if _is_empty(buffer) and shareable:
            new_index[old] = 0
            return
        key = None
        if shareable and buffer.data is not None:
            key = hashlib.sha256(np.asarray(buffer.data, np.uint8).tobytes()).digest()
            if key in by_content:
                new_index[old] = by_content[key]
                return
        order.append(old)
        new_index[old] = len(order) - 1
        if key is not None:
            by_content[key] = new_index[old]

    for entry in model.metadata or []:
        place(int(entry.buffer), shareable=False)
    for b in model.metadataBuffer or []:
        place(int(b), shareable=False)
    for tensor in tensors:
        place(int(tensor.buffer), shareable=not tensor.isVariable)
    return new_index, order


def remove_identities(graph):
    """Drop MULs by all-ones and ADD/SUBs of all-zeros (a kept group's mask, a zero fill)."""
    outputs = set(graph.sub.outputs)
    for i, op in enumerate(graph.ops):
        name = graph.names[i]
        if i in graph.removed or name not in ("MUL", "ADD", "SUB") or op.outputs[0] in outputs:
            continue
        if getattr(op.builtinOptions, "fusedActivationFunction", 0):
            continue
        neutral = 1.0 if name == "MUL" else 0.0
        positions = (0, 1) if name != "SUB" else (1,)
        for position in positions:
            value = graph.const(op.inputs[position])
            other = op.inputs[1 - position]
            if value is None or graph.const(other) is not None or np.any(value != neutral):
                continue
            if graph.shape(other) != graph.shape(op.outputs[0]):
                continue
            _alias(graph, op.outputs[0], other)
            graph.removed.add(i)
            break


def _alias(graph, old, new):
    for i, op in enumerate(graph.ops):
        if i not in graph.removed:
            op.inputs = [new if t == old else t for t in op.inputs]


def drop_unused(graph):
    """Remove dead ops, then keep only referenced tensors of the subgraph."""
    live = set(graph.sub.outputs)
    kept_ops = []
    for i in reversed(range(len(graph.ops))):
        op = graph.ops[i]
        if i in graph.removed or not live.intersection(op.outputs):
            continue
        kept_ops.append(op)
        live.update(t for t in op.inputs if t >= 0)
    kept_ops.reverse()
    used = sorted(live | set(graph.sub.inputs) | {t for op in kept_ops for t in op.outputs})
    remap = {old: new for new, old in enumerate(used)}
    graph.sub.tensors = [graph.sub.tensors[t] for t in used]
    for op in kept_ops:
        op.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        op.outputs = [remap[t] for t in op.outputs]
    graph.sub.inputs = [remap[t] for t in graph.sub.inputs]
    graph.sub.outputs = [remap[t] for t in graph.sub.outputs]
    graph.sub.operators = kept_ops
    return remap
