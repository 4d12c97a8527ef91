"""What a fine-prune export's bytes are, and what each size reduction saves (docs/file_size.md quotes this).

For each model, exports float32 and int8 (dynamic range) with the compact step
off, then applies tflite/compaction.py's steps one after another to the same
bytes and prints the size after each; then the breakdown of the compacted
file: constant data (weights and other constants, float vs int8), the
metadata, and the rest (graph structure: subgraphs, tensors, operators), and
the int8 / float ratio.

Models: `kws` (MLPerf Tiny DS-CNN with the MFCC front-end; `kws-gather` is the
same with the front-end's old GATHER framing, to measure that change),
`resnet8` (MLPerf Tiny ResNet-8), `fashion` (the Fashion-MNIST MLP, 784-1024-1024-10,
untrained: sizes do not depend on the weights' values).

usage: python benchmarks/file_size.py [--model kws,kws-gather,resnet8,fashion] [--data DIR]
"""

import argparse
import contextlib
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tflite_fineprune.tflite.compaction import STEPS, compact_model  # noqa: E402
from tflite_fineprune.tflite.schema import load_schema, read_model, write_model  # noqa: E402


@contextlib.contextmanager
def gather_framing():
    """The front-end as it was: frames by GATHER of a [49, 480] int32 index table."""
    import keras

    from tflite_fineprune.converters import frontend

    def frame(signal):
        return keras.ops.take(signal, frontend.frame_indices(), axis=1)

    saved = frontend.frame
    frontend.frame = frame
    try:
        yield
    finally:
        frontend.frame = saved


def export(name, path, data_root, **options):
    if name.startswith("kws"):
        from tflite_fineprune.converters.speech import export_mlperf

        with gather_framing() if name == "kws-gather" else contextlib.nullcontext():
            export_mlperf(path, data_root, **options)
    elif name == "resnet8":
        from tflite_fineprune.converters.vision import export_mlperf

        export_mlperf(path, data_root, **options)
    elif name == "fashion":
        from tflite_fineprune.converters.fashion import FASHION_LABELS, fashion_mlp
        from tflite_fineprune import export_model

        export_model(fashion_mlp(), path, labels=FASHION_LABELS, **options)
    else:
        raise SystemExit(f"unknown model {name!r}")


def compacted(data, steps):
    model = read_model(data)
    compact_model(model, steps)
    return write_model(model, len(data))


def breakdown(data):
    """{part: bytes} of a .tflite, and (subgraphs, tensors, operators)."""
    schema = load_schema()
    model = read_model(data)
    metadata = {int(m.buffer) for m in model.metadata or ()}
    sizes = [0 if b.data is None else len(b.data) for b in model.buffers]
    kinds = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if sizes[tensor.buffer] and tensor.buffer not in metadata:
                kinds[int(tensor.buffer)] = "int8" if tensor.type == schema.TensorType.INT8 else "other"
    parts = {
        "int8 constants": sum(sizes[b] for b, k in kinds.items() if k == "int8"),
        "other constants": sum(sizes[b] for b, k in kinds.items() if k == "other"),
        "metadata": sum(sizes[b] for b in metadata),
        "tensor names": sum(len(t.name or b"") for s in model.subgraphs for t in s.tensors),
    }
    parts["structure"] = len(data) - sum(parts.values())
    counts = (len(model.subgraphs), sum(len(s.tensors) for s in model.subgraphs),
              sum(len(s.operators) for s in model.subgraphs))
    return parts, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="kws,kws-gather,resnet8,fashion")
    parser.add_argument("--data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.model.split(","):
            sizes = {}
            for kind, options in (("float32", {}), ("int8", {"quantize": "int8"})):
                path = os.path.join(workdir, f"{name}-{kind}.tflite")
                export(name, path, args.data, compact=False, **options)
                raw = pathlib.Path(path).read_bytes()
                steps = [("converted", raw)] + [(f"+ {s}", compacted(raw, STEPS[:i + 1])) for i, s in enumerate(STEPS)]
                sizes[kind] = steps
            print(f"\n{name}: file bytes after each compact step (cumulative)")
            print(f"{'step':<16} {'float32':>9} {'int8':>9} {'int8/float':>10}")
            for (step, f), (_, q) in zip(sizes["float32"], sizes["int8"]):
                print(f"{step:<16} {len(f):>9,} {len(q):>9,} {len(q) / len(f):>9.3f}x")
            print(f"{name}: breakdown of the compacted files (bytes)")
            parts = {kind: breakdown(steps[-1][1]) for kind, steps in sizes.items()}
            print(f"{'part':<16} {'float32':>9} {'int8':>9}")
            for part in parts["float32"][0]:
                print(f"{part:<16} {parts['float32'][0][part]:>9,} {parts['int8'][0][part]:>9,}")
            subgraphs, tensors, ops = parts["float32"][1]
            print(f"{name}: {subgraphs} subgraphs, {tensors} tensors, {ops} operators (float32 file)")
            f, q = parts["float32"][0], parts["int8"][0]
            fixed = f["metadata"] + f["structure"]
            print(f"{name}: int8/float {len(sizes['int8'][-1][1]) / len(sizes['float32'][-1][1]):.3f}x; "
                  f"with zero-byte structure and metadata it would be "
                  f"{(q['int8 constants'] + q['other constants']) / (f['int8 constants'] + f['other constants']):.3f}"
                  "x; "
                  f"structure + metadata are {fixed / len(sizes['float32'][-1][1]):.0%} of the float file")


if __name__ == "__main__":
    main()
