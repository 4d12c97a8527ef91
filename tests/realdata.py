"""Real test inputs from the demo data folder (the library's one lookup, demo_data.data_root)."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from tflite_fineprune.datafiles import fit_audio, load_audio
from tflite_fineprune.demo_data import CIFAR10_LABELS, data_root

CLIP_SAMPLES = 16000
REPO = pathlib.Path(__file__).resolve().parents[1]


def require(relative):
    path = data_root(needs=[relative]) / relative
    if not path.exists():
        pytest.skip(f"real data {path} is absent (tflite-fineprune data fetch, or set FINEPRUNE_DATA)")
    return path


CIFAR_CLASSES = CIFAR10_LABELS


def cifar_files(per_class, classes=CIFAR_CLASSES, start=0):
    root = require("cifar10_test")
    files = []
    for name in classes:
        files.extend(sorted((root / name).glob("*.jpg"))[start:start + per_class])
    return files


def cifar_images(per_class=4, size=None, classes=CIFAR_CLASSES, start=0):
    """float32 pixels 0–255, shape (n, H, W, 3), from the CIFAR-10 test JPEGs."""
    images = []
    for path in cifar_files(per_class, classes, start):
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None:
                image = image.resize((size, size), Image.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32))
    return np.stack(images)


def read_clip(path):
    """float32 PCM in [-1, 1] at 16 kHz, padded or cut to 16000 samples: the library's own audio path."""
    return fit_audio(path, *load_audio(path), (CLIP_SAMPLES,), CLIP_SAMPLES)


def speech_clips(count=16, words=("yes", "no", "up", "down")):
    """float32 PCM in [-1, 1], shape (n, 16000), from Speech Commands test clips."""
    root = require("speech_commands_v0.02_test")
    per_word = max(1, count // len(words))
    return np.stack([read_clip(path) for word in words for path in sorted((root / word).glob("*.wav"))[:per_word]])


def speech_test_split(step=1):
    """(clips, labels) of every `step`-th clip of the Speech Commands test split, all 12 classes."""
    root = require("speech_commands_v0.02_test")
    files = sorted(p for p in root.glob("*/*.wav"))[::step]
    return np.stack([read_clip(p) for p in files]), [p.parent.name for p in files]


def real_inputs(name, count=24):
    """Real inputs matching a zoo model by name."""
    if name == "conv1d_audio":
        return speech_clips(count)
    if name == "mobilenet_v2":
        return cifar_images(max(1, count // 10), size=96)
    return cifar_images(max(1, count // 10))
