"""Synthetic test inputs for the zoo models: the core tests run anywhere, without the shared data folder.

They are structured, not white noise: images are smooth random colour fields with
edges (so conv units respond unevenly, as on photos), audio clips are a few
tones under an envelope plus noise (so units differ in how often they fire).
The real-data variants of the same tests (tests/realdata.py) skip when the
data is absent.
"""

import numpy as np

AUDIO_SAMPLES = 16000


def images(count, size=32, seed=0):
    """float32 pixels 0–255, shape (count, size, size, 3): upsampled random 4x4 colour fields plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 4, 4, 3))
    block = -(-size // 4)
    fields = np.kron(coarse, np.ones((1, block, block, 1)))[:, :size, :size]
    noise = rng.normal(0, 20, fields.shape)
    return np.clip(fields + noise, 0, 255).astype(np.float32)


def clips(count, seed=0):
    """float32 PCM in [-1, 1], shape (count, 16000): 1–3 tones under a random envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(AUDIO_SAMPLES) / AUDIO_SAMPLES
    out = np.empty((count, AUDIO_SAMPLES), np.float32)
    for i in range(count):
        tones = sum(rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t + rng.uniform(0, 6.3))
                    for _ in range(rng.integers(1, 4)))
        start, length = rng.uniform(0, 0.5), rng.uniform(0.2, 0.5)
        envelope = np.exp(-((t - start - length / 2) / (length / 2)) ** 2)
        out[i] = np.clip(tones * envelope + rng.normal(0, 0.02, AUDIO_SAMPLES), -1, 1)
    return out


def synthetic_inputs(name, count=24, seed=0):
    """Synthetic inputs matching a zoo model by name (same shapes as `realdata.real_inputs`)."""
    if name == "conv1d_audio":
        return clips(count, seed)
    # Same sample counts as real_inputs (whole classes of CIFAR images there).
    n = max(1, count // 10) * 10
    return images(n, 96 if name == "mobilenet_v2" else 32, seed)
