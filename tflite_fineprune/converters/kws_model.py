"""The MLPerf Tiny keyword-spotting DS-CNN in Keras 3, and its weights read from the MLPerf SavedModel checkpoint.

Shared by the speech converter (`tflite_fineprune.converters.speech mlperf`) and the training
recipe (`tflite_fineprune.converters.speech_training`, which starts from this architecture).
"""

import os

import keras
from keras import layers

from .frontend import NUM_FRAMES, NUM_MFCC
from ..errors import ModelError

KWS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
DS_CNN_FILTERS = 64
DS_CNN_BLOCKS = 4



def ds_cnn(num_classes=len(KWS_LABELS), input_shape=(NUM_FRAMES, NUM_MFCC, 1), filters=DS_CNN_FILTERS,
           blocks=DS_CNN_BLOCKS, stem_dropout=0.2, name="ds_cnn"):
    """The MLPerf Tiny DS-CNN (keras_model.py, `ds_cnn`), layer for layer.

    The final average pool spans the whole 25x5 map left by the stride-2 stem.
    `stem_dropout=0` drops the Dropout in front of the first depthwise block's BatchNorm.
    """
    inputs = keras.Input(input_shape, name="mfcc")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    if stem_dropout:
        x = layers.Dropout(stem_dropout)(x)
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
        raise ModelError(f"no SavedModel checkpoint at {prefix}.index; "
                         "expected the MLPerf Tiny kws_ref_model folder")
    reader = tf.train.load_checkpoint(prefix)
    model = ds_cnn()
    for index, layer in enumerate(_weight_layers(model)):
        names = next(v for k, v in _CHECKPOINT_NAMES.items() if type(layer) is k)
        values = []
        for name in names:
            key = f"layer_with_weights-{index}/{name}/.ATTRIBUTES/VARIABLE_VALUE"
            if not reader.has_tensor(key):
                raise ModelError(f"checkpoint {prefix} lacks {key}; is this the MLPerf Tiny DS-CNN?")
            values.append(reader.get_tensor(key))
        try:
            layer.set_weights(values)
        except ValueError as exc:
            raise ModelError(f"checkpoint weights do not fit layer {layer.name!r}: {exc}") from None
    return model
