"""Probe (host-side scores): how far can a label-free stopping rule prune on top of `auto`?

Per user: `personalize` (auto), then prune each hidden layer's lowest-scoring live units to a rate r on top
of auto's masks, for a grid of r; record accuracy on the user's evaluation half, MACs removed, and the
agreement with auto's predictions on the user's own (unlabeled) adaptation samples. Scores:
activity frequency, mean activation, mean activation x outgoing weight norm (next BN folded).
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

RATES = (0.0, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def all_layers(model):
    import keras
    out = {}
    stack = [model]
    while stack:
        layer = stack.pop()
        out[layer.name] = layer
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
    return out


def out_norms(model, metadata):
    """Per unit (flat mask order), the L2 norm of its outgoing weights, consumer BN scale folded."""
    import keras
    layers = all_layers(model)
    sq = np.zeros(metadata.num_units)
    for wl in metadata.weight_layers:
        base = wl.name.split("/")[0]
        layer = layers[base]
        if wl.name.endswith("/depthwise"):
            kernel = np.asarray(layer.depthwise_kernel)
        elif wl.name.endswith("/pointwise"):
            continue
        elif wl.kind == "depthwise":
            kernel = np.asarray(layer.kernel if not hasattr(layer, "depthwise_kernel") else layer.depthwise_kernel)
        else:
            kernel = np.asarray(layer.kernel)
        scale = np.ones(wl.out_channels)
        nodes = layer._outbound_nodes
        if len(nodes) == 1 and isinstance(nodes[0].operation, keras.layers.BatchNormalization):
            bn = nodes[0].operation
            gamma = np.asarray(bn.gamma) if bn.scale else 1.0
            scale = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        if wl.kind == "depthwise":
            k = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])  # positions, in, multiplier
            k = k * scale.reshape(1, k.shape[1], k.shape[2])
            per_in = np.sum(k * k, axis=(0, 2))
        else:
            k = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]) * scale
            per_in = np.sum(k * k, axis=(0, 2))  # per input feature (after flatten: channels x repeat)
        start = 0
        for group, channels, repeat in wl.in_segments:
            seg = per_in[start:start + channels * repeat]
            start += channels * repeat
            if group is None:
                continue
            g = metadata.groups[group]
            sq[g.offset:g.offset + g.units] += seg.reshape(-1, channels).sum(axis=0) if repeat > 1 else seg
    return np.sqrt(sq)


def prune_to(masks, scores, metadata, rate):
    masks = masks.copy()
    for g in metadata.hidden_groups:
        m = masks[g.offset:g.offset + g.units]
        s = np.where(m > 0.5, scores[g.offset:g.offset + g.units], -1.0)
        count = min(max(int(g.units - m.sum()), int(np.floor(rate * g.units + 0.5))), g.units - 1)
        order = np.argsort(s, kind="stable")
        m = np.ones(g.units, np.float32)
        m[order[:count]] = 0
        masks[g.offset:g.offset + g.units] = m
    return masks


def run(model_path, keras_model, users, out_csv):
    import dataclasses
    from tflite_fineprune import Personalizer
    from tflite_fineprune.sparsity import measure_sparsity
    p = Personalizer(model_path)
    meta = p.metadata
    norms = out_norms(keras_model, meta)
    rows = []
    for u in users:
        report = p.personalize(u.adapt_x, progress=False)
        base = p.get_state()
        n = base.samples
        freq = base.counts / n
        mean = base.sums / n
        ref_adapt = np.argmax(p.predict(u.adapt_x), -1)
        for crit, scores in (("mean", mean), ("mean_x_norm", mean * norms)):
            for r in RATES:
                masks = prune_to(base.masks, scores, meta, r) if r else base.masks
                p.set_state(dataclasses.replace(base, masks=masks, fill=np.zeros_like(base.fill)))
                pa = np.argmax(p.predict(u.adapt_x), -1)
                pe = p.predict(u.eval_x)
                acc = float(np.mean(np.argmax(pe, -1) == u.eval_y))
                agree = float(np.mean(pa == ref_adapt))
                agree4 = float(np.mean(pa[::4] == ref_adapt[::4]))
                s = measure_sparsity(meta, masks)
                rows.append((u.name, crit, r, acc, agree, s.macs, s.units, len(u.adapt_x), agree4))
        p.set_state(base)
        print(u.name, report.recipe, flush=True)
    import csv
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "criterion", "rate", "acc", "agree", "macs", "units", "n_adapt", "agree4"])
        w.writerows(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["fashion", "cifar", "speech"])
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--users", type=int, default=30)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import keras
    from converters import demo
    from tflite_fineprune.evaluation import class_subset_users, speaker_users
    if args.kind == "fashion":
        from converters.fashion import export_fashion_mlp, load_fashion_mnist
        path = out / "probe_fashion_mc.tflite"
        export_fashion_mlp(path, out / "fashion_mlp.keras", mean_compensation=True)
        model = keras.models.load_model(out / "fashion_mlp.keras", compile=False)
        x, y = load_fashion_mnist("test")
        users = class_subset_users([x[y == c] for c in range(10)], adapt_per_class=100, eval_per_class=100)
    elif args.kind == "cifar":
        from converters.vision import cifar_by_class, export_mlperf, load_mlperf_resnet8
        root = demo.find_data(None, True)
        by_class = cifar_by_class(root)
        path = out / "probe_resnet8_mc.tflite"
        if not path.exists():
            export_mlperf(path, root, mean_compensation=True)
        model = load_mlperf_resnet8(root)
        users = class_subset_users([c[100:] for c in by_class])
    else:
        from converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
        from converters.speech import KWS_LABELS, export_mlperf, load_mlperf_ds_cnn
        from tflite_fineprune.datafiles import fit_audio, load_audio
        root = demo.find_data(None, False)
        path = out / "probe_kws_mc.tflite"
        if not path.exists():
            export_mlperf(path, root, mean_compensation=True)
        from tflite_fineprune.reference_data import MLPERF_KWS
        model = load_mlperf_ds_cnn(root / MLPERF_KWS)
        users = speaker_users(root / demo.SPEECH_DATA[0], list(KWS_LABELS),
                              lambda f: fit_audio(f, *load_audio(f), (CLIP_SAMPLES,), SAMPLE_RATE))
    run(path, model, users[:args.users], out / f"probe2_{args.kind}.csv")


if __name__ == "__main__":
    main()
