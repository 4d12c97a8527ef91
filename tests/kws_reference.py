"""Independent references for the MLPerf KWS front-end: tf.signal (the training pipeline) and librosa."""

import numpy as np


def tf_signal_mfcc(pcm):
    """The MLPerf Tiny training pipeline, written with tf.signal as in its get_preprocess_audio_func."""
    import tensorflow as tf

    x = tf.constant(pcm, tf.float32)
    x = tf.clip_by_value(x / tf.reduce_max(x, axis=-1, keepdims=True), -1.0, 1.0)
    stft = tf.signal.stft(x, frame_length=480, frame_step=320, fft_length=None)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(40, stft.shape[-1], 16000, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(tf.abs(stft), mel_matrix, 1) + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10].numpy()


def librosa_mfcc(pcm):
    """The same features from librosa's STFT and HTK mel filters, float64.

    librosa centres a 480-sample window inside each 512-sample frame, so the
    clip is delayed by 16 samples to frame the same audio as tf.signal. Its mel
    triangles are built in Hz rather than in mel units, the one real difference.
    """
    import librosa
    import scipy.fft

    out = []
    for clip in np.asarray(pcm, np.float64):
        y = np.clip(clip / clip.max(), -1.0, 1.0)
        y = np.concatenate([np.zeros(16), y])
        spectrum = np.abs(librosa.stft(y, n_fft=512, hop_length=320, win_length=480, window="hann", center=False))
        mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20.0, fmax=4000.0, htk=True, norm=None)
        log_mel = np.log(mel @ spectrum + 1e-6)
        # tf.signal's MFCC is the unnormalized DCT-II scaled by 1/sqrt(2 * mel bins).
        out.append((scipy.fft.dct(log_mel, type=2, axis=0) / np.sqrt(2 * 40))[:10].T)
    return np.stack(out)


def savedmodel_predict(saved_model_dir, features):
    """Run the MLPerf SavedModel itself (TF1 loader: its Keras 2 objects do not load in TF2 with Keras 3)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(saved_model_dir))
        signature = meta.signature_def["serving_default"]
        inp = next(iter(signature.inputs.values())).name
        out = next(iter(signature.outputs.values())).name
        return session.run(out, {inp: np.asarray(features, np.float32).reshape(-1, 49, 10, 1)})
