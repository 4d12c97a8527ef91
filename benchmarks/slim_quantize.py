"""int8 slim files (`slim(..., quantize="int8")`) vs float slim files: size and accuracy (docs/slim.md quotes this).

* MLPerf Tiny DS-CNN (MFCC front-end inside), exported by the speech
  converter: observes 300 random clips of the Speech Commands v0.02 test
  split, prunes each layer to the unit sparsity, slims float and int8;
  accuracy on all 4,890 clips (raw PCM, LiteRT).
* Fashion-MNIST MLP (784-1024-1024-10, `tflite_fineprune/converters/fashion.py`, trained once
  and cached): a user who only sees tops (T-shirt, pullover, coat, shirt)
  observes 2,000 training images of those classes; accuracy on the 4,000 test
  images of those classes.

Each row also slims the converter's int8 export (`export_model(quantize="int8")`)
with the same masks ("export int8"): what TensorFlow's quantizer gives, for
comparison with slim's TF-free one.

usage: python benchmarks/slim_quantize.py [--data DIR] [--cache DIR] [--only ds_cnn|fashion_mlp]
"""

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.demo_data import data_root  # noqa: E402
from tflite_fineprune.slim import slim_model  # noqa: E402
from tflite_fineprune.state import State  # noqa: E402

USER_CLASSES = (0, 2, 4, 6)


def ds_cnn(workdir, args):
    from tflite_fineprune.converters.speech import export_mlperf
    from tests.realdata import read_clip

    root = data_root(args.data)
    files = sorted((root / "speech_commands_v0.02_test").glob("*/*.wav"))
    pcm = np.stack([read_clip(p) for p in files])
    words = [p.parent.name for p in files]
    path = os.path.join(workdir, "ds_cnn.tflite")
    export_mlperf(path, root, verify=False)
    export_mlperf(path.replace(".tflite", "-int8.tflite"), root, verify=False, quantize="int8")
    index = {label: i for i, label in enumerate(Personalizer(path).labels)}
    truth = np.array([index[word] for word in words])
    observed = pcm[np.random.default_rng(0).choice(len(pcm), 300, replace=False)]
    return path, observed, pcm, truth, f"{len(files)} Speech Commands v0.02 test clips"


def fashion_mlp(workdir, args):
    from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

    path = os.path.join(workdir, "fashion.tflite")
    keras_path = os.path.join(args.cache, "fashion_mlp.keras")
    export_fashion_mlp(path, keras_path=keras_path, verify=False)
    export_fashion_mlp(path.replace(".tflite", "-int8.tflite"), keras_path=keras_path, verify=False, quantize="int8")
    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    observed = train_x[np.isin(train_y, USER_CLASSES)][:2000]
    mine = np.isin(test_y, USER_CLASSES)
    return path, observed, test_x[mine], test_y[mine], f"{mine.sum()} Fashion-MNIST test images of the user's 4 classes"


MODELS = {"ds_cnn": (ds_cnn, (0.0, 0.1, 0.3)), "fashion_mlp": (fashion_mlp, (0.0, 0.5, 0.7))}


def measure(name, builder, sparsities, workdir, args):
    path, observed, x, truth, what = builder(workdir, args)
    personalizer = Personalizer(path, backend="litert")
    personalizer.observe(observed, progress=False)
    observed_state = personalizer.get_state()
    print(f"\n{name}: {what}, LiteRT; export {os.path.getsize(path) / 1e3:,.0f} kB")
    print(f"{'units':>5} {'weights':>7} {'float kB':>8} {'int8 kB':>7} {'int8/float':>10} {'int8 tensors':>12} "
          f"{'float acc':>9} {'int8 acc':>8} {'int8-float':>10} {'agree':>7} {'max |diff|':>10} "
          f"{'export int8 kB':>14} {'export int8 acc':>15}")
    for sparsity in sparsities:
        personalizer.set_state(observed_state)
        report = personalizer.prune(sparsity) if sparsity else personalizer.sparsity()
        float_slim = personalizer.slim(os.path.join(workdir, f"{name}-{sparsity}.tflite"))
        int8_slim = personalizer.slim(os.path.join(workdir, f"{name}-{sparsity}-int8.tflite"), quantize="int8")
        state = personalizer.get_state()  # the same masks on the converter's int8 export (another fingerprint)
        converter = slim_model(path.replace(".tflite", "-int8.tflite"), State(masks=state.masks, counts=state.counts,
                               samples=state.samples), os.path.join(workdir, f"{name}-{sparsity}-export-int8.tflite"))
        outputs = [Personalizer(r.path).predict(x, batch_size=64, progress=False)
                   for r in (float_slim, int8_slim, converter)]
        accuracy = [float(np.mean(o.argmax(1) == truth)) for o in outputs]
        agree = float(np.mean(outputs[0].argmax(1) == outputs[1].argmax(1)))
        error = float(np.max(np.abs(outputs[0] - outputs[1])))
        print(f"{sparsity:>5.0%} {report.weights:>7.1%} {float_slim.slim_bytes / 1e3:>8,.1f} "
              f"{int8_slim.slim_bytes / 1e3:>7,.1f} {int8_slim.slim_bytes / float_slim.slim_bytes:>9.3f}x "
              f"{len(int8_slim.quantized_tensors):>12} {accuracy[0]:>9.4f} {accuracy[1]:>8.4f} "
              f"{100 * (accuracy[1] - accuracy[0]):>+9.2f}p {agree:>7.2%} {error:>10.4f} "
              f"{converter.slim_bytes / 1e3:>14,.1f} {accuracy[2]:>15.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA)")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/tflite-fineprune"),
                        help="where the trained Fashion-MNIST MLP is kept between runs")
    parser.add_argument("--only", choices=tuple(MODELS), action="append")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    print("float slim vs int8 slim (dynamic range, slim --quantize int8); units = unit sparsity per layer, "
          "weights = fraction of weights removed; outputs: probabilities (DS-CNN) or logits (MLP)")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only or MODELS:
            builder, sparsities = MODELS[name]
            measure(name, builder, sparsities, workdir, args)


if __name__ == "__main__":
    main()
