"""A wide Fashion-MNIST convnet (Conv 64 → Conv 128 → pool → Conv 128 → pool → Dense 256 → Dense 10).

The convnet counterpart of `tflite_fineprune/converters/fashion.py`'s MLP: far more capacity
than a user who meets two to five of the ten classes needs, which is the
paper's regime (`../shared/findings/room-to-prune.md`). `batchnorm=True` puts a
BatchNormalization after each conv, as nearly every real convnet has; the
export then carries `reference_images` training images as the BatchNorm
reference pool.

Training takes minutes on a laptop CPU, so the trained Keras model is cached
(`cache_dir`, default `$FINEPRUNE_CACHE` or `~/.cache/tflite-fineprune`) and
reused by the demo and the benchmarks; delete the file to train again.
"""

import os
import pathlib

import numpy as np

from .fashion import FASHION_LABELS, load_fashion_mnist

CONV_WIDTHS = (64, 128, 128)
DENSE_WIDTH = 256


def default_cache_dir():
    """Where trained models are kept: `$FINEPRUNE_CACHE`, else `~/.cache/tflite-fineprune`."""
    return pathlib.Path(os.environ.get("FINEPRUNE_CACHE") or pathlib.Path.home() / ".cache" / "tflite-fineprune")


def cached_model_path(batchnorm, cache_dir=None, epochs=2, widths=CONV_WIDTHS, dense=DENSE_WIDTH, limit=None):
    """The cache file of one training configuration (every setting that changes the weights is in the name)."""
    name = (f"fashion_cnn_{'bn' if batchnorm else 'plain'}_{'-'.join(map(str, widths))}_{dense}_e{epochs}"
            f"{f'_n{limit}' if limit else ''}.keras")
    return pathlib.Path(cache_dir or default_cache_dir()) / name


def fashion_cnn(batchnorm=True, widths=CONV_WIDTHS, dense=DENSE_WIDTH):
    """uint8 28x28 pixels → Rescaling → 3 ReLU convs (BN after each with `batchnorm`), 2 pools → Dense → 10 logits."""
    import keras  # here, not at the top: reading the data needs no TensorFlow
    from keras import layers

    pixels = keras.Input((28, 28), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 255.0)(pixels)
    x = layers.Reshape((28, 28, 1))(x)
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding="same", use_bias=not batchnorm, name=f"conv{i + 1}")(x)
        if batchnorm:
            x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if i >= 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="relu", name="hidden")(x)
    name = "fashion_cnn_bn" if batchnorm else "fashion_cnn"
    return keras.Model(pixels, layers.Dense(10, name="classes")(x), name=name)


def train_fashion_cnn(batchnorm=True, epochs=2, root=None, seed=0, widths=CONV_WIDTHS, dense=DENSE_WIDTH,
                      limit=None, verbose=2):
    """Train on the training split (its first `limit` images if given); returns (model, test accuracy)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, y = load_fashion_mnist("train", root)
    if limit:
        x, y = x[:limit], y[:limit]
    test_x, test_y = load_fashion_mnist("test", root)
    model = fashion_cnn(batchnorm, widths, dense)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=verbose)
    accuracy = float(np.mean(np.argmax(model.predict(test_x, batch_size=500, verbose=0), 1) == test_y))
    return model, accuracy


def trained_fashion_cnn(batchnorm=True, cache_dir=None, epochs=2, root=None, widths=CONV_WIDTHS,
                        dense=DENSE_WIDTH, limit=None, verbose=2):
    """(model, test accuracy or None when loaded): the cached model, else trained now and saved to the cache."""
    import keras

    from ..safe_io import atomic_write

    path = cached_model_path(batchnorm, cache_dir, epochs, widths, dense, limit)
    if path.exists():
        return keras.models.load_model(path, compile=False), None
    model, accuracy = train_fashion_cnn(batchnorm, epochs, root, widths=widths, dense=dense, limit=limit,
                                        verbose=verbose)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras writes by file name: save beside the cache, then move it in whole (a killed run leaves no half file).
    partial = path.with_name(path.stem + ".partial.keras")
    model.save(partial)
    with open(partial, "rb") as f:
        atomic_write(path, f.read())
    partial.unlink()
    return model, accuracy


def reference_images(root=None, count=500):
    """The export's BatchNorm reference pool: the first `count` training images (never a test user's)."""
    return load_fashion_mnist("train", root)[0][:count]


def export_fashion_cnn(output, batchnorm=True, cache_dir=None, epochs=2, root=None, options=None, **changes):
    """Export the (cached or newly trained) convnet; returns (export report, test accuracy or None)."""
    from .. import export_model

    model, accuracy = trained_fashion_cnn(batchnorm, cache_dir, epochs, root)
    if batchnorm:
        changes.setdefault("reference_data", reference_images(root))
    return export_model(model, output, options, **{"labels": FASHION_LABELS, **changes}), accuracy
