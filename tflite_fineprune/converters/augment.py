"""Training-time audio augmentation as Keras layers that are the identity at inference.

They sit inside the trained model (PCM → time shift → noise → MFCC → SpecAugment →
classifier), so training needs no data pipeline beyond the clips themselves. Called
with `training=False` — as the exporter always calls layers — each returns its input
unchanged and adds no operation to the exported graph.
"""

import keras
from keras import ops


class _TrainingOnly(keras.layers.Layer):
    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="tflite_fineprune")
class RandomTimeShift(_TrainingOnly):
    """Shift each clip `[N, samples]` by up to ±`max_shift` samples, zero-filling the gap."""

    def __init__(self, max_shift=1600, **kwargs):
        super().__init__(**kwargs)
        self.max_shift = max_shift

    def call(self, pcm, training=None):
        if not training or not self.max_shift:
            return pcm
        length = pcm.shape[-1]
        shift = keras.random.randint((ops.shape(pcm)[0], 1), -self.max_shift, self.max_shift + 1,
                                     seed=self.seed_generator, dtype="int32")
        source = ops.arange(length, dtype="int32")[None, :] - shift
        inside = ops.logical_and(source >= 0, source < length)
        moved = ops.take_along_axis(pcm, ops.clip(source, 0, length - 1), axis=1)
        return ops.where(inside, moved, ops.zeros_like(moved))

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift}


@keras.saving.register_keras_serializable(package="tflite_fineprune")
class RandomNoise(_TrainingOnly):
    """Add Gaussian noise at a random SNR (uniform in dB) to a `probability` share of the clips."""

    def __init__(self, min_snr_db=10.0, max_snr_db=40.0, probability=0.5, **kwargs):
        super().__init__(**kwargs)
        self.min_snr_db, self.max_snr_db, self.probability = min_snr_db, max_snr_db, probability

    def call(self, pcm, training=None):
        if not training or not self.probability:
            return pcm
        batch = (ops.shape(pcm)[0], 1)
        snr_db = keras.random.uniform(batch, self.min_snr_db, self.max_snr_db, seed=self.seed_generator)
        signal_rms = ops.sqrt(ops.mean(ops.square(pcm), axis=-1, keepdims=True) + 1e-12)
        noise_rms = signal_rms * ops.power(10.0, -snr_db / 20.0)
        applied = ops.cast(keras.random.uniform(batch, seed=self.seed_generator) < self.probability, pcm.dtype)
        return pcm + applied * noise_rms * keras.random.normal(ops.shape(pcm), seed=self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "min_snr_db": self.min_snr_db, "max_snr_db": self.max_snr_db,
                "probability": self.probability}


@keras.saving.register_keras_serializable(package="tflite_fineprune")
class SpecAugment(_TrainingOnly):
    """SpecAugment-style masks on features `[N, time, coefficients, 1]`.

    Each clip gets `time_masks` bands of up to `max_time` frames and `freq_masks`
    bands of up to `max_freq` coefficients; masked cells take the clip's mean over
    time of that coefficient (MFCCs are not zero-centred, so a zero would be an
    out-of-range value rather than "no information").
    """

    def __init__(self, time_masks=2, max_time=5, freq_masks=1, max_freq=2, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.max_time, self.freq_masks, self.max_freq = time_masks, max_time, freq_masks, max_freq

    def _bands(self, batch, size, count, max_width, shape):
        positions = ops.reshape(ops.arange(size, dtype="int32"), shape)
        masked = None
        for _ in range(count):
            width = keras.random.randint((batch, 1, 1, 1), 0, max_width + 1, seed=self.seed_generator, dtype="int32")
            start = ops.cast(ops.floor(keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
                                       * ops.cast(size - width + 1, "float32")), "int32")
            band = ops.logical_and(positions >= start, positions < start + width)
            masked = band if masked is None else ops.logical_or(masked, band)
        return masked

    def call(self, features, training=None):
        if not training or not (self.time_masks or self.freq_masks):
            return features
        batch = ops.shape(features)[0]
        frames, coefficients = features.shape[1], features.shape[2]
        masks = [m for m in (self._bands(batch, frames, self.time_masks, self.max_time, (1, frames, 1, 1)),
                             self._bands(batch, coefficients, self.freq_masks, self.max_freq, (1, 1, coefficients, 1)))
                 if m is not None]
        masked = masks[0] if len(masks) == 1 else ops.logical_or(*masks)
        mean = ops.mean(features, axis=1, keepdims=True)
        return ops.where(masked, ops.broadcast_to(mean, ops.shape(features)), features)

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "max_time": self.max_time,
                "freq_masks": self.freq_masks, "max_freq": self.max_freq}


def register_with_exporter():
    from ..export.layer_registry import Role, register

    # The identity at inference: channels stay independent.
    for layer_class in (RandomTimeShift, RandomNoise, SpecAugment):
        register(layer_class, Role.CHANNELWISE)


register_with_exporter()
