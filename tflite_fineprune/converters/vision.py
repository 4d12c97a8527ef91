"""The vision converter: image classifiers that take uint8 HxWx3 pixels.

Commands:

    python -m tflite_fineprune.converters.vision mlperf -o RESNET8.tflite [--data DIR]
    python -m tflite_fineprune.converters.vision keras-app NAME -o X.tflite [--weights auto|imagenet|none|PATH]
        [--size 224]
    python -m tflite_fineprune.converters.vision fashion-mlp -o X.tflite [--keras MODEL.keras] [--epochs 5]

The image front-end (cast, bilinear resize, the model's own pixel scaling) is a
Keras layer inside the exported graph, so a phone feeds camera pixels as they are.
"""

import os
import pathlib
import sys

import keras
import numpy as np

from .command_line import add_export_command, as_options, command_parser, export_options, run_command
from .. import demo_data
from ..errors import FinePruneError
from ..demo_data import CIFAR10_LABELS, MLPERF_RESNET8


# keras.applications constructors: their module, and the ImageFrontEnd options that reproduce the
# module's preprocess_input (none for MobileNetV3, which rescales by itself).
KERAS_APPS = {
    "MobileNetV2": ("mobilenet_v2", {"scale": 1 / 127.5, "offset": -1.0}),
    "MobileNetV3Small": ("mobilenet_v3", {}),
    "MobileNetV3Large": ("mobilenet_v3", {}),
    "ResNet50": ("resnet50", {"mode": "caffe"}),
}
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tflite_fineprune")
class ImageFrontEnd(keras.layers.Layer):
    """uint8 `[N, H, W, 3]` → float `[N, size, size, 3]`: cast, resize, `x * scale + offset`.

    `mode="caffe"` flips RGB to BGR and subtracts the ImageNet means (ResNet50).
    """

    def __init__(self, size, scale=1.0, offset=0.0, mode="linear", **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(v) for v in size)
        self.scale = float(scale)
        self.offset = float(offset)
        self.mode = mode

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale": self.scale, "offset": self.offset,
                "mode": self.mode}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, 3)

    def call(self, pixels):
        ops = keras.ops
        x = ops.cast(pixels, "float32")
        if tuple(pixels.shape[1:3]) != self.size:
            x = ops.image.resize(x, self.size, interpolation="bilinear")
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, "float32")
        elif self.scale != 1.0 or self.offset != 0.0:
            x = x * self.scale + self.offset
        return x


def register_with_exporter():
    from ..export.layer_registry import Role, register

    register(ImageFrontEnd, Role.MIXING)


# Importing this module is enough for export_model to accept ImageFrontEnd.
register_with_exporter()


def with_frontend(classifier, input_size=None, scale=1.0, offset=0.0, mode="linear"):
    size = tuple(classifier.input_shape[1:3])
    input_size = tuple(input_size or size)
    pixels = keras.Input((*input_size, 3), dtype="uint8", name="pixels")
    front = ImageFrontEnd(size, scale, offset, mode, name="image_frontend")(pixels)
    return keras.Model(pixels, classifier(front), name=f"{classifier.name}_uint8")


def load_mlperf_resnet8(data_root=None):
    path = demo_data.require_data([MLPERF_RESNET8], data_root, "the MLPerf Tiny ResNet-8") / MLPERF_RESNET8
    return keras.models.load_model(path, compile=False)


REFERENCE_PER_CLASS = 100  # the first CIFAR-10 test images of each class: the BN reference pool, never a user's


def cifar_by_class(data_root=None):
    """The CIFAR-10 test JPEGs as one uint8 array per class (file-name order)."""
    from PIL import Image

    root = demo_data.require_data([demo_data.CIFAR10_TEST], data_root, "the CIFAR-10 test images")
    return [np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted((root / demo_data.CIFAR10_TEST
                                                                                 / name).glob("*.jpg"))])
            for name in CIFAR10_LABELS]


def export_mlperf(output, data_root=None, options=None, **changes):
    """MLPerf Tiny ResNet-8 (CIFAR-10, raw 0–255 input) behind a uint8 front-end.

    BN reference statistics come from the first `REFERENCE_PER_CLASS` test
    images of each class when the CIFAR-10 test images are there (users are
    drawn from the rest), unless `reference_data` is given.
    """
    from .. import export_model

    options = as_options(options, **changes)
    if options.reference_data is None and (demo_data.data_root(data_root, [demo_data.CIFAR10_TEST])
                                           / demo_data.CIFAR10_TEST).is_dir():
        options = options.with_changes(
            reference_data=np.concatenate([c[:REFERENCE_PER_CLASS] for c in cifar_by_class(data_root)]))
    model = with_frontend(load_mlperf_resnet8(data_root))
    return export_model(model, output, options, labels=CIFAR10_LABELS)


def _cached_imagenet(name):
    cache = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "models"
    return sorted(cache.glob(f"{name.lower()}*.h5")) if cache.exists() else []


def keras_app(name, weights="auto", size=224):
    """A keras.applications classifier. `weights="auto"` never touches the network: cached
    ImageNet weights when present, else random weights (weights=None)."""
    if name not in KERAS_APPS:
        raise FinePruneError(f"unknown keras application {name!r}; expected one of {', '.join(KERAS_APPS)}")
    constructor = getattr(keras.applications, name)
    if weights == "auto":
        weights = "imagenet" if _cached_imagenet(KERAS_APPS[name][0]) else None
    elif weights == "none":
        weights = None
    elif weights not in ("imagenet", None) and not os.path.isfile(weights):
        raise FinePruneError(f"weights must be auto, imagenet, none or an existing file; got {weights!r}")
    try:
        return constructor(weights=weights, input_shape=(size, size, 3)), weights
    except Exception as exc:  # download failures come as several types
        raise FinePruneError(f"cannot build {name} with weights={weights!r}: {exc}. Offline? use --weights none "
                             "or a local weights file") from None


def export_keras_app(name, output, weights="auto", size=224, options=None, **changes):
    from .. import export_model

    model, used = keras_app(name, weights, size)
    return export_model(with_frontend(model, **KERAS_APPS[name][1]), output, options, **changes), used


def main(argv=None):
    parser, commands = command_parser("python -m tflite_fineprune.converters.vision", __doc__)
    p = add_export_command(commands, "mlperf", "MLPerf Tiny ResNet-8 (CIFAR-10) with a uint8 front-end")
    p.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA, else the one "
                   "`tflite-fineprune data fetch` fills)")
    p = add_export_command(commands, "keras-app", "a keras.applications model with a uint8 front-end")
    p.add_argument("name", choices=sorted(KERAS_APPS), help="the keras.applications constructor")
    p.add_argument("--weights", default="auto",
                   help="auto (cached ImageNet or random, no network), imagenet, none, PATH")
    p.add_argument("--size", type=int, default=224, help="the model's square input size in pixels")
    p = add_export_command(commands, "fashion-mlp",
                           "train the 784-1024-1024 Fashion-MNIST MLP on the CPU and export it")
    p.add_argument("--keras", help="save the trained Keras model here (and reuse it if it exists)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs")
    args = parser.parse_args(argv)

    def action():
        if args.command == "mlperf":
            print(export_mlperf(args.output, args.data, export_options(args)))
        elif args.command == "fashion-mlp":
            from .fashion import export_fashion_mlp

            report, accuracy = export_fashion_mlp(args.output, args.keras, args.epochs,
                                                  options=export_options(args))
            print(report if accuracy is None else f"{report}; test accuracy {accuracy:.4f}")
        else:
            report, used = export_keras_app(args.name, args.output, args.weights, args.size,
                                            export_options(args))
            print(f"{report} (weights: {used or 'random'})")

    return run_command(parser.prog, action)


if __name__ == "__main__":
    sys.exit(main())
