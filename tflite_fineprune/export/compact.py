"""Shrink a converted TFLite model's graph structure without changing what it computes.

A fine-prune export holds a dozen signature subgraphs and about a thousand
tensors; for a small model such as the MLPerf DS-CNN (~25k parameters) that
structure outweighs the weights (docs/file_size.md). The converter writes,
for every tensor, its TensorFlow op name, its own empty buffer and an empty
quantization table. None of them is needed to run the file:

- ``names``: tensor names are only for humans. Nothing here, in LiteRT /
  tflite-runtime or in the Android app looks a tensor up by name: signature
  inputs and outputs are named by the SignatureDefs (kept), variables by
  VAR_HANDLE's shared_name (kept).
- ``buffers``: a tensor without data may point at buffer 0, the schema's
  "no buffer"; empty buffers then go, identical constant buffers are shared,
  and every index (tensors, metadata entries) is renumbered.
- ``quantization``: an all-empty quantization table is the same as none.

`compact` works on the schema's object API (`ModelT`), in place, before the
exporter adds its metadata and seals the file, so the seal covers the
compacted bytes.
"""

import hashlib

import numpy as np

STEPS = ("names", "buffers", "quantization")


def compact(model, steps=STEPS):
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
        _share_buffers(model, tensors)
    return model


def _empty_quantization(q):
    arrays = (q.min, q.max, q.scale, q.zeroPoint)
    return all(a is None or len(a) == 0 for a in arrays) and q.details is None


def _is_empty(buffer):
    return (buffer.data is None or len(buffer.data) == 0) and not getattr(buffer, "offset", 0)


def _share_buffers(model, tensors):
    """Point data-less tensors at buffer 0, share identical constants, drop the buffers left unused."""
    buffers = model.buffers
    if not buffers or not _is_empty(buffers[0]):
        return  # not the converter's layout (buffer 0 empty): leave it alone
    metadata = model.metadata or []
    # Tensors that carry data, and metadata entries, keep a buffer of their own content.
    keep = {}  # old index -> new index
    new_buffers = [buffers[0]]
    by_content = {}

    def place(old, shareable):
        if old in keep:
            return keep[old]
        buffer = buffers[old]
        if _is_empty(buffer) and shareable:
            keep[old] = 0
            return 0
        key = None
        if shareable and buffer.data is not None:
            key = hashlib.sha256(np.asarray(buffer.data, np.uint8).tobytes()).digest()
            if key in by_content:
                keep[old] = by_content[key]
                return keep[old]
        new_buffers.append(buffer)
        keep[old] = len(new_buffers) - 1
        if key is not None:
            by_content[key] = keep[old]
        return keep[old]

    for entry in metadata:  # metadata buffers are never shared or dropped, even when empty
        entry.buffer = place(int(entry.buffer), shareable=False)
    if model.metadataBuffer is not None:  # the deprecated list of metadata buffers
        model.metadataBuffer = [place(int(b), shareable=False) for b in model.metadataBuffer]
    for tensor in tensors:
        tensor.buffer = place(int(tensor.buffer), shareable=not tensor.isVariable)
    model.buffers = new_buffers
