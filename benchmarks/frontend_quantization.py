"""Which front-end constant costs the int8 MLPerf DS-CNN its accuracy.

Three front-ends in front of the MLPerf Tiny DS-CNN, each converted plainly
(TFLiteConverter, no fine-prune routine) as float and with dynamic-range int8
quantization, run through LiteRT on a random subset of the Speech Commands
v0.02 test split:

- `dft matrix, mel matrix`: the old front-end, a 480x514 windowed-DFT matrix and the 257x40 mel matrix;
- `dft matrix, mel blocks`: the old DFT matrix, the mel matrix as below;
- `rfft, mel matrix`: builtin RFFT2D, the whole 257x40 mel matrix;
- `rfft, mel blocks`: tflite_fineprune/converters/frontend.py now, RFFT2D and the mel matrix cut to blocks under
  1024 elements, which dynamic-range quantization leaves float.

usage: python benchmarks/frontend_quantization.py [--data DIR] [--clips N]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tflite_fineprune.converters import frontend  # noqa: E402
from tflite_fineprune.converters.kws_model import KWS_LABELS, load_mlperf_ds_cnn  # noqa: E402
from tests.realdata import read_clip  # noqa: E402
from tflite_fineprune.demo_data import MLPERF_KWS, data_root  # noqa: E402


def dft_matrix():
    """[480, 514]: real then imaginary parts of the windowed, zero-padded 512-point DFT (the old front-end)."""
    n = np.arange(frontend.FRAME_LENGTH)[:, None]
    k = np.arange(frontend.FFT_LENGTH // 2 + 1)[None, :]
    angle = 2 * np.pi * n * k / frontend.FFT_LENGTH
    window = frontend.hann_window().astype(np.float64)[:, None]
    return np.concatenate([np.cos(angle) * window, -np.sin(angle) * window], axis=1).astype(np.float32)


class Variant(frontend.MlperfMfcc):
    """The front-end with its spectrum and mel steps chosen by `dft` and `mel_blocks`."""

    def __init__(self, dft, blocks, **kwargs):
        super().__init__(**kwargs)
        self.dft, self.blocks = dft, blocks
        self._dft, self._mel = dft_matrix(), frontend.mel_matrix()

    def call(self, pcm):
        ops = keras.ops
        peak = ops.max(pcm, axis=-1, keepdims=True)
        scaled = ops.clip(pcm / ops.maximum(peak, 1e-12), -1.0, 1.0)
        frames = frontend.frame(scaled)
        if self.dft:
            spectrum = ops.matmul(frames, self._dft)
            bins = frontend.FFT_LENGTH // 2 + 1
            real, imaginary = spectrum[..., :bins], spectrum[..., bins:]
        else:
            real, imaginary = ops.rfft(frames * self._window, fft_length=frontend.FFT_LENGTH)
        magnitude = ops.sqrt(ops.square(real) + ops.square(imaginary))
        if self.blocks:
            mel = ops.concatenate([ops.matmul(magnitude[..., :self._used_bins], b) for b in self._mel_blocks], -1)
        else:
            mel = ops.matmul(magnitude, self._mel)
        return ops.expand_dims(ops.matmul(ops.log(mel + frontend.LOG_OFFSET), self._dct), -1)


def convert(model, quantize):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def predict(model_bytes, pcm, batch=50):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(source, (batch, pcm.shape[1]))
    interpreter.allocate_tensors()
    out = []
    for start in range(0, len(pcm), batch):
        chunk = pcm[start:start + batch]
        interpreter.set_tensor(source, np.pad(chunk, ((0, batch - len(chunk)), (0, 0))))
        interpreter.invoke()
        out.append(interpreter.get_tensor(target)[:len(chunk)])
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--clips", type=int, default=1000, help="random test clips (seed 0)")
    args = parser.parse_args()
    root = data_root(args.data)
    files = sorted((root / "speech_commands_v0.02_test").glob("*/*.wav"))
    files = [files[i] for i in sorted(np.random.default_rng(0).choice(len(files), args.clips, replace=False))]
    pcm = np.stack([read_clip(p) for p in files])
    words = np.array([p.parent.name for p in files])
    labels = np.array(KWS_LABELS)
    classifier = load_mlperf_ds_cnn(root / MLPERF_KWS)
    print(f"{len(files)} random clips of the Speech Commands v0.02 test split, plain conversion, LiteRT")
    print(f"{'front-end':<22} {'float acc':>9} {'int8 acc':>9} {'int8 - float':>12} {'float MB':>8} {'int8 MB':>8}")
    for name, dft, blocks in (("dft matrix, mel matrix", True, False), ("dft matrix, mel blocks", True, True),
                              ("rfft, mel matrix", False, False),
                              ("rfft, mel blocks", False, True)):
        pcm_input = keras.Input((frontend.CLIP_SAMPLES,))
        model = keras.Model(pcm_input, classifier(Variant(dft, blocks)(pcm_input)))
        accuracy, size = {}, {}
        for quantize in (False, True):
            model_bytes = convert(model, quantize)
            accuracy[quantize] = np.mean(labels[predict(model_bytes, pcm).argmax(1)] == words)
            size[quantize] = len(model_bytes) / 1e6
        print(f"{name:<22} {accuracy[False]:>9.4f} {accuracy[True]:>9.4f} "
              f"{100 * (accuracy[True] - accuracy[False]):>+11.2f}p {size[False]:>8.3f} {size[True]:>8.3f}")


if __name__ == "__main__":
    main()
