"""The speech converter: keyword-spotting models that take raw 16 kHz PCM.

Commands (see README):

    python -m converters.speech mlperf -o KWS.tflite [--data DIR]
    python -m converters.speech train DATA_DIR -o KWS.tflite [--keras MODEL.keras] [--epochs E]

`mlperf` rebuilds the MLPerf Tiny DS-CNN in Keras 3, loads the weights of its
SavedModel checkpoint, puts the MFCC front-end in front of it and exports the
result: input float32 PCM `[N, 16000]` in [-1, 1] (int16 values work too).
"""

import os
import pathlib
import sys

import keras
import numpy as np
from keras import layers

from converters.frontend import CLIP_SAMPLES, NUM_FRAMES, NUM_MFCC, SAMPLE_RATE, MlperfMfcc
from converters.common import add_export_command, command_parser, export_options, run_command
from tflite_fineprune import reference_data
from tflite_fineprune.reference_data import MLPERF_KWS
from tflite_fineprune.errors import FinePruneError

KWS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
DS_CNN_FILTERS = 64
DS_CNN_BLOCKS = 4



def ds_cnn(num_classes=len(KWS_LABELS), input_shape=(NUM_FRAMES, NUM_MFCC, 1), filters=DS_CNN_FILTERS,
           blocks=DS_CNN_BLOCKS, name="ds_cnn"):
    """The MLPerf Tiny DS-CNN (keras_model.py, `ds_cnn`), layer for layer.

    The final average pool spans the whole 25x5 map left by the stride-2 stem.
    """
    inputs = keras.Input(input_shape, name="mfcc")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.Dropout(0.2)(x)
    for i in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), padding="same", name=f"dw{i}")(x)
        x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.Activation("relu", name=f"dw{i}_relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", name=f"pw{i}")(x)
        x = layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = layers.Activation("relu", name=f"pw{i}_relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def _weight_layers(model):
    """Layers in the order Keras 2 numbered them in checkpoints ('layer_with_weights-i')."""
    return [layer for layer in model.layers if layer.weights]


_CHECKPOINT_NAMES = {
    layers.Conv2D: ("kernel", "bias"),
    layers.DepthwiseConv2D: ("depthwise_kernel", "bias"),
    layers.Dense: ("kernel", "bias"),
    layers.BatchNormalization: ("gamma", "beta", "moving_mean", "moving_variance"),
}


def load_mlperf_ds_cnn(saved_model_dir):
    """Keras 3 DS-CNN holding the weights of the MLPerf Tiny KWS SavedModel checkpoint."""
    import tensorflow as tf

    prefix = os.path.join(os.fspath(saved_model_dir), "variables", "variables")
    if not os.path.exists(prefix + ".index"):
        raise FinePruneError(f"no SavedModel checkpoint at {prefix}.index; expected the MLPerf Tiny kws_ref_model folder")
    reader = tf.train.load_checkpoint(prefix)
    model = ds_cnn()
    for index, layer in enumerate(_weight_layers(model)):
        names = next(v for k, v in _CHECKPOINT_NAMES.items() if type(layer) is k)
        values = []
        for name in names:
            key = f"layer_with_weights-{index}/{name}/.ATTRIBUTES/VARIABLE_VALUE"
            if not reader.has_tensor(key):
                raise FinePruneError(f"checkpoint {prefix} lacks {key}; is this the MLPerf Tiny DS-CNN?")
            values.append(reader.get_tensor(key))
        try:
            layer.set_weights(values)
        except ValueError as exc:
            raise FinePruneError(f"checkpoint weights do not fit layer {layer.name!r}: {exc}") from None
    return model


def with_frontend(classifier, name="kws"):
    """Raw PCM `[N, 16000]` → MFCC front-end → `classifier`."""
    pcm = keras.Input((CLIP_SAMPLES,), name="pcm")
    return keras.Model(pcm, classifier(MlperfMfcc(name="mfcc_frontend")(pcm)), name=name)


def export_pcm_model(model, output, labels, **options):
    """Export a model taking 16 kHz PCM: int16 input accepted (scaled by 1/32768), audio files resampled."""
    from tflite_fineprune import export_model

    return export_model(model, output, labels=labels, int16_scale=1.0 / 32768, sample_rate=SAMPLE_RATE, **options)


def export_mlperf(output, data_root=None, **options):
    root = reference_data.require_data([MLPERF_KWS], data_root, "the MLPerf Tiny DS-CNN")
    return export_pcm_model(with_frontend(load_mlperf_ds_cnn(root / MLPERF_KWS)), output, KWS_LABELS, **options)


def load_labelled_clips(data_dir):
    """(pcm [N, 16000], labels [N], label names) from DATA_DIR/<label>/*.wav|flac, resampled to 16 kHz."""
    from tflite_fineprune.datafiles import AUDIO_SUFFIXES, fit_audio, load_audio

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise FinePruneError(f"training data folder {root} does not exist")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    clips, labels = [], []
    for index, name in enumerate(names):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                audio, rate = load_audio(path)
                clips.append(fit_audio(path, audio, rate, (CLIP_SAMPLES,), SAMPLE_RATE))
                labels.append(index)
    if len(set(labels)) < 2:
        raise FinePruneError(f"{root} needs at least two <label>/ folders with audio files; found {names or 'none'}")
    return np.stack(clips), np.array(labels), tuple(names)


def train_keyword_model(pcm, labels, num_classes, epochs=20, filters=DS_CNN_FILTERS, seed=0, verbose=2):
    """A DS-CNN-style model trained end to end on raw PCM (the MFCC front-end has no weights)."""
    keras.utils.set_random_seed(seed)
    model = with_frontend(ds_cnn(num_classes, filters=filters, name="ds_cnn_keywords"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(pcm, labels, batch_size=64, epochs=epochs, shuffle=True, verbose=verbose)
    return model


def export_trained(data_dir, output, keras_path=None, epochs=20, **options):
    pcm, labels, names = load_labelled_clips(data_dir)
    model = train_keyword_model(pcm, labels, len(names), epochs)
    if keras_path:
        model.save(keras_path)
    return export_pcm_model(model, output, names, **options)


def main(argv=None):
    parser, commands = command_parser("python -m converters.speech", __doc__)
    p = add_export_command(commands, "mlperf", "MLPerf Tiny DS-CNN with the MFCC front-end")
    p.add_argument("--data", help="shared data folder (default: $FINEPRUNE_DATA or ../shared/data)")
    p = add_export_command(commands, "train", "train a DS-CNN-style model on DATA_DIR/<label>/*.wav and export it")
    p.add_argument("data_dir", help="a folder of <label>/ folders holding .wav/.flac clips")
    p.add_argument("--keras", help="also save the trained Keras model here")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    args = parser.parse_args(argv)

    def action():
        if args.command == "mlperf":
            print(export_mlperf(args.output, args.data, **export_options(args)))
        else:
            print(export_trained(args.data_dir, args.output, args.keras, args.epochs, **export_options(args)))

    return run_command(parser.prog, action)


if __name__ == "__main__":
    sys.exit(main())
