"""The MLPerf Tiny keyword-spotting MFCC front-end as a Keras layer of TFLite builtins.

Raw 16 kHz PCM `[N, 16000]` → MFCC `[N, 49, 10, 1]`, computed the way the MLPerf
Tiny DS-CNN was trained (its `get_preprocess_audio_func`):

1. scale each clip by its maximum sample value, clip to [-1, 1];
2. 49 frames of 480 samples every 320 (30 ms / 20 ms), periodic Hann window;
3. magnitude of the 512-point DFT (257 bins), by the builtin RFFT2D;
4. 40 HTK-mel bins between 20 and 4000 Hz (TensorFlow's mel matrix), `log(x + 1e-6)`;
5. the first 10 coefficients of TensorFlow's MFCC DCT.

The mel and DCT steps are constant matrices and the framing is slices and
reshapes, so the whole front-end lowers to STRIDED_SLICE, RESHAPE,
CONCATENATION, MUL, RFFT2D, REAL/IMAG, FULLY_CONNECTED, SQRT and LOG — builtins a
phone runs without any feature code. Int16 PCM works too: step 1 makes the features
independent of the input scale.

Every constant stays under the 1024 elements below which dynamic-range (int8)
quantization leaves a weight float, so an int8 export keeps the front-end
exact: a quantized mel matmul runs as a hybrid kernel that also rounds the
magnitudes to int8 per frame, which zeroes the quiet bins that the log then
blows up (docs/quantization.md has the accuracy this cost the MLPerf DS-CNN).
Hence the RFFT instead of a 480×514 DFT matrix, and the mel matrix cut to the
bins below UPPER_HZ and split into column blocks.
"""

import keras
import numpy as np

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
FRAME_LENGTH = 480
FRAME_STEP = 320
FFT_LENGTH = 512
NUM_MEL_BINS = 40
LOWER_HZ = 20.0
UPPER_HZ = 4000.0
NUM_MFCC = 10
LOG_OFFSET = 1e-6
NUM_FRAMES = 1 + (CLIP_SAMPLES - FRAME_LENGTH) // FRAME_STEP  # 49
# Dynamic-range quantization leaves weights with fewer elements than this float
# (the TFLite converter's default min_elements_for_weights).
FLOAT_WEIGHT_LIMIT = 1024


def hann_window():
    """Periodic Hann window of FRAME_LENGTH samples (as tf.signal.hann_window)."""
    n = np.arange(FRAME_LENGTH)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME_LENGTH)).astype(np.float32)


def mel_matrix():
    """TensorFlow's linear-to-mel weight matrix [257, 40] (HTK mel, triangles in mel space)."""
    import tensorflow as tf

    return tf.signal.linear_to_mel_weight_matrix(
        NUM_MEL_BINS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, LOWER_HZ, UPPER_HZ).numpy().astype(np.float32)


def mel_blocks():
    """The mel matrix's rows that can be nonzero (bins up to UPPER_HZ) cut into column blocks
    of fewer than FLOAT_WEIGHT_LIMIT elements each: (used bins, [blocks])."""
    mel = mel_matrix()
    used = int(np.flatnonzero(mel.any(axis=1))[-1]) + 1
    width = (FLOAT_WEIGHT_LIMIT - 1) // used
    return used, [mel[:used, start:start + width] for start in range(0, NUM_MEL_BINS, width)]


def dct_matrix():
    """[40, 10]: TensorFlow's `mfccs_from_log_mel_spectrograms`, first 10 coefficients, as a matrix."""
    import tensorflow as tf

    basis = tf.signal.mfccs_from_log_mel_spectrograms(tf.eye(NUM_MEL_BINS)).numpy()
    return basis[:, :NUM_MFCC].astype(np.float32)


def frame_indices():
    """[49, 480]: the samples of each frame (what `frame` computes; the tests compare against it)."""
    return (np.arange(NUM_FRAMES)[:, None] * FRAME_STEP + np.arange(FRAME_LENGTH)[None, :]).astype(np.int32)


# Frame j is samples [j·step, j·step + length): piece i of it is the slice [i·step, (i+1)·step) of that
# range, i.e. row j of the clip from sample i·step reshaped into rows of `step`. Slices and reshapes need
# no index table (a GATHER of frame_indices() stored a 94 KB int32 constant in every export).
_PIECES = -(-FRAME_LENGTH // FRAME_STEP)
assert (_PIECES - 1) * FRAME_STEP + NUM_FRAMES * FRAME_STEP <= CLIP_SAMPLES, "the last piece runs past the clip"


def frame(signal):
    """`[N, CLIP_SAMPLES]` → `[N, NUM_FRAMES, FRAME_LENGTH]` frames, as `take(signal, frame_indices(), axis=1)`."""
    ops = keras.ops
    pieces = []
    for i in range(_PIECES):
        start = i * FRAME_STEP
        rows = ops.reshape(signal[:, start:start + NUM_FRAMES * FRAME_STEP], (-1, NUM_FRAMES, FRAME_STEP))
        pieces.append(rows[:, :, :min(FRAME_STEP, FRAME_LENGTH - start)])
    return ops.concatenate(pieces, axis=-1)


@keras.saving.register_keras_serializable(package="tflite_fineprune")
class MlperfMfcc(keras.layers.Layer):
    """PCM `[N, 16000]` → MLPerf Tiny KWS MFCC features `[N, 49, 10, 1]`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._window = hann_window()
        self._used_bins, self._mel_blocks = mel_blocks()
        self._dct = dct_matrix()

    def compute_output_shape(self, input_shape):
        return (input_shape[0], NUM_FRAMES, NUM_MFCC, 1)

    def call(self, pcm):
        ops = keras.ops
        pcm = ops.cast(pcm, "float32")
        peak = ops.max(pcm, axis=-1, keepdims=True)
        # A silent clip has peak 0; keep it finite instead of dividing by zero.
        scaled = ops.clip(pcm / ops.maximum(peak, 1e-12), -1.0, 1.0)
        frames = frame(scaled) * self._window  # [N, 49, 480]
        real, imaginary = ops.rfft(frames, fft_length=FFT_LENGTH)  # [N, 49, 257] each
        magnitude = ops.sqrt(ops.square(real) + ops.square(imaginary))[..., :self._used_bins]
        mel = ops.concatenate([ops.matmul(magnitude, block) for block in self._mel_blocks], axis=-1)
        mfcc = ops.matmul(ops.log(mel + LOG_OFFSET), self._dct)
        return ops.expand_dims(mfcc, -1)


def register_with_exporter():
    from ..export.layer_registry import Role, register

    register(MlperfMfcc, Role.MIXING)


# Importing this module is enough for export_model to accept MlperfMfcc.
register_with_exporter()
