"""An over-parameterized Fashion-MNIST MLP (784-1024-1024-10), trained on the CPU in a few minutes.

Compact models have no dormant units; this one has slack, which is where
activity pruning can personalize. Data: Debian's `dataset-fashion-mnist`
(`apt-get install dataset-fashion-mnist`), or any folder with the four
`*-ubyte.gz` files (`FASHION_MNIST` or the `root` argument).
"""

import gzip
import os
import pathlib

import numpy as np

from ..errors import InputError

FASHION_LABELS = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                  "ankle-boot")
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path, offset):
    try:
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


HOW_TO_GET = ("on Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (installs them in " + DEFAULT_ROOT + "); "
              "elsewhere: download the four *-ubyte.gz files from "
              "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a folder and pass it with "
              "--data DIR (or set FASHION_MNIST=DIR)")


def _has_files(folder):
    return all((folder / name).is_file() for pair in FILES.values() for name in pair)


def find_fashion_mnist(given=None):
    """The folder holding the four Fashion-MNIST `*-ubyte.gz` files.

    `given` (the demo's --data) and its `fashion-mnist` sub-folder, else
    `$FASHION_MNIST`, else Debian's `/usr/share/datasets/fashion-mnist`. An
    explicit folder that lacks them is an error, never silently skipped.
    """
    if given:
        candidates = [pathlib.Path(given), pathlib.Path(given) / "fashion-mnist"]
    elif os.environ.get("FASHION_MNIST"):
        candidates = [pathlib.Path(os.environ["FASHION_MNIST"])]
    else:
        candidates = [pathlib.Path(DEFAULT_ROOT)]
    for folder in candidates:
        if _has_files(folder):
            return folder
    names = ", ".join(name for pair in FILES.values() for name in pair)
    where = " or ".join(str(c) for c in candidates)
    source = "--data" if given else "$FASHION_MNIST" if os.environ.get("FASHION_MNIST") else "the default"
    raise InputError(f"Fashion-MNIST ({names}) not found in {where} (from {source}); get it {HOW_TO_GET}")


def load_fashion_mnist(split="train", root=None):
    """(images uint8 [N, 28, 28], labels int64 [N]) of one split; `root` as in `find_fashion_mnist`."""
    root = find_fashion_mnist(root)
    images_file, labels_file = (root / name for name in FILES[split])
    images = _read_idx(images_file, 16).reshape(-1, 28, 28)
    labels = _read_idx(labels_file, 8).astype(np.int64)
    if len(images) != len(labels):
        raise InputError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images, labels


def fashion_mlp(hidden=(1024, 1024)):
    """uint8 28x28 pixels → Rescaling → Flatten → ReLU layers → 10 logits."""
    import keras  # here, not at the top: finding and reading the data needs no TensorFlow
    from keras import layers

    pixels = keras.Input((28, 28), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 255.0)(pixels)
    x = layers.Flatten()(x)
    for i, width in enumerate(hidden):
        x = layers.Dense(width, activation="relu", name=f"hidden{i + 1}")(x)
    return keras.Model(pixels, layers.Dense(10, name="classes")(x), name="fashion_mlp")


def train_fashion_mlp(epochs=5, root=None, seed=0, hidden=(1024, 1024), limit=None, verbose=2):
    """Train on the training split; returns (model, test accuracy)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, y = load_fashion_mnist("train", root)
    if limit:
        x, y = x[:limit], y[:limit]
    test_x, test_y = load_fashion_mnist("test", root)
    model = fashion_mlp(hidden)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=verbose)
    accuracy = float(np.mean(np.argmax(model.predict(test_x, batch_size=1024, verbose=0), 1) == test_y))
    return model, accuracy


def export_fashion_mlp(output, keras_path=None, epochs=5, root=None, options=None, **changes):
    """Train (or load from `keras_path` when it exists) and export; saves the Keras model to `keras_path`."""
    import keras

    from .. import export_model

    if keras_path and os.path.exists(keras_path):
        model = keras.models.load_model(keras_path, compile=False)
        accuracy = None
    else:
        model, accuracy = train_fashion_mlp(epochs, root)
        if keras_path:
            model.save(keras_path)
    return export_model(model, output, options, **{"labels": FASHION_LABELS, **changes}), accuracy
