"""Small Keras models covering the layer types the exporter supports, plus helpers.

Weights are random but seeded; BatchNorm layers get non-trivial statistics so
that fidelity tests exercise the folded normalization.
"""

import keras
import numpy as np
from keras import layers


def randomize_batchnorm(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize_batchnorm(layer, seed + 1)
        elif isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0.0, 0.3, n).astype("float32"))
    return model


def plain_cnn(input_shape=(32, 32, 3)):
    keras.utils.set_random_seed(1)
    inp = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_a")(x)
    x = layers.BatchNormalization(name="bn_a")(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(24, 3, padding="same", activation="relu", name="conv_b")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(32, 3, name="conv_c")(x)
    x = layers.BatchNormalization(name="bn_c")(x)
    x = layers.Activation("swish")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(10, name="classes")(x)
    return randomize_batchnorm(keras.Model(inp, out, name="plain_cnn"))


def dense_only(input_shape=(32, 32, 3)):
    keras.utils.set_random_seed(2)
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Rescaling(1 / 127.5, offset=-1.0),
        layers.Flatten(),
        layers.Dense(64, activation="relu", name="hidden_1"),
        layers.Dropout(0.2),
        layers.Dense(48, activation="relu", name="hidden_2"),
        layers.Dense(10, activation="softmax", name="classes"),
    ], name="dense_only")


def conv1d_audio(samples=16000):
    keras.utils.set_random_seed(3)
    inp = keras.Input((samples,))
    x = layers.Reshape((samples, 1))(inp)
    x = layers.Conv1D(12, 9, strides=4, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(max_value=6.0)(x)
    x = layers.MaxPooling1D(4)(x)
    x = layers.Conv1D(16, 5, strides=2, activation="relu")(x)
    x = layers.ZeroPadding1D(2)(x)
    x = layers.SeparableConv1D(20, 5, strides=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("gelu")(x)
    x = layers.GlobalMaxPooling1D()(x)
    out = layers.Dense(12)(x)
    return randomize_batchnorm(keras.Model(inp, out, name="conv1d_audio"))


def residual_separable(input_shape=(32, 32, 3)):
    keras.utils.set_random_seed(4)
    inp = keras.Input(input_shape)
    x = layers.Normalization(mean=[125.3, 123.0, 113.9], variance=[3900.0, 3800.0, 4400.0])(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for width in (16, 24):
        shortcut = x
        if shortcut.shape[-1] != width:
            shortcut = layers.Conv2D(width, 1, use_bias=False)(shortcut)
            shortcut = layers.BatchNormalization()(shortcut)
        y = layers.SeparableConv2D(width, 3, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.DepthwiseConv2D(3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("hard_swish")(y)
        y = layers.Conv2D(width, 1, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.Add()([shortcut, y])
        x = layers.ReLU()(x)
    a = layers.Conv2D(8, 1, activation="relu")(x)
    b = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Concatenate()([a, b])
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(10, activation="softmax")(x)
    return randomize_batchnorm(keras.Model(inp, out, name="residual_separable"))


def mobilenet_v2(input_shape=(96, 96, 3)):
    keras.utils.set_random_seed(5)
    model = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=input_shape, classes=10,
                                           classifier_activation=None)
    return randomize_batchnorm(model, seed=5)


def nested_backbone(input_shape=(32, 32, 3)):
    """A functional backbone used as a layer inside a Sequential classifier."""
    keras.utils.set_random_seed(6)
    inp = keras.Input(input_shape)
    x = layers.Conv2D(12, 3, activation="relu")(inp)
    x = layers.Conv2D(12, 3)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    backbone = keras.Model(inp, x, name="backbone")
    model = keras.Sequential([keras.Input(input_shape), layers.Rescaling(1 / 255.0), backbone,
                              layers.GlobalAveragePooling2D(), layers.Dense(16, activation="relu"),
                              layers.Dense(5)], name="nested")
    return randomize_batchnorm(model, seed=6)


ZOO = {
    "plain_cnn": plain_cnn,
    "dense_only": dense_only,
    "conv1d_audio": conv1d_audio,
    "residual_separable": residual_separable,
    "mobilenet_v2": mobilenet_v2,
    "nested_backbone": nested_backbone,
}

# -- references computed from Keras, independent of the exporter's planner -----

CHAIN_TYPES = (layers.BatchNormalization, layers.ReLU, layers.Activation)


def all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
        else:
            yield layer


def find_layer(model, name):
    for layer in all_layers(model):
        if layer.name == name:
            return layer
    raise KeyError(name)


def chain_end(layer):
    """The layer whose output the mask multiplies: follow single BN/activation consumers."""
    chain = [layer]
    current = layer
    while True:
        consumers = [node.operation for node in current._outbound_nodes]
        if len(consumers) != 1 or not isinstance(consumers[0], CHAIN_TYPES):
            return chain
        current = consumers[0]
        chain.append(current)


def unit_outputs(model, names):
    """Keras values of the masked tensor of each named unit layer, as a callable."""
    return {name: chain_end(find_layer(model, name))[-1].output for name in names}


def keras_activity(model, names, x):
    """Reference activity: fraction of (sample, position) pairs > 0, per unit."""
    flat = _flat_model(model)
    tensors = unit_outputs(flat, names)
    probe = keras.Model(flat.inputs[0], list(tensors.values()))
    values = probe(x, training=False)
    if not isinstance(values, (list, tuple)):
        values = [values]
    result = {}
    for name, value in zip(tensors, values):
        v = np.asarray(value)
        active = (v > 0).astype(np.float64)
        if v.ndim > 2:
            active = active.mean(axis=tuple(range(1, v.ndim - 1)))
        result[name] = active.mean(axis=0)
    return result


def keras_mean_activation(model, names, x):
    """Reference mean of each unit's masked tensor over samples and positions."""
    flat = _flat_model(model)
    tensors = unit_outputs(flat, names)
    values = keras.Model(flat.inputs[0], list(tensors.values()))(x, training=False)
    result = {}
    for name, value in zip(tensors, values):
        v = np.asarray(value, np.float64)
        result[name] = v.reshape(-1, v.shape[-1]).mean(axis=0)
    return result


def _flat_model(model):
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        raise ValueError("reference activity needs a flat model")
    return model


def zero_units(model, masks):
    """A copy of `model` whose pruned units output exactly 0, by editing weights.

    With BatchNorm in the chain, gamma = beta = 0 makes its output 0; otherwise
    the unit's kernel slice and bias are zeroed. Activations map 0 to 0.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for name, mask in masks.items():
        chain = chain_end(find_layer(clone, name))
        dead = np.flatnonzero(np.asarray(mask) == 0)
        if not len(dead):
            continue
        bns = [layer for layer in chain if isinstance(layer, layers.BatchNormalization)]
        if bns:
            bn = bns[-1]
            for var in (bn.gamma, bn.beta):
                value = np.array(var.numpy())
                value[dead] = 0
                var.assign(value)
            continue
        layer = chain[0]
        kernel = layer.pointwise_kernel if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)) \
            else layer.kernel
        value = np.array(kernel.numpy())
        if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
            value = value.reshape(value.shape[:-2] + (-1,))
            value[..., dead] = 0
            value = value.reshape(kernel.shape)
        else:
            value[..., dead] = 0
        kernel.assign(value)
        if layer.use_bias:
            bias = np.array(layer.bias.numpy())
            bias[dead] = 0
            layer.bias.assign(bias)
    return clone
