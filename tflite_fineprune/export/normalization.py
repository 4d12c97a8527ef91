"""Normalization re-estimation: which BatchNormalization layers adapt, and their reference moments.

*Relative AdaBN* keeps each BatchNormalization layer's trained statistics
(m₀, v₀) and moves them by the gap between the user's data and a reference
pool, both measured the same way at inference through the unadapted network:

    mean ← m₀ + a·(μ_user − μ_ref),   var ← v₀ · (σ²_user / σ²_ref)^a

per channel, over batch and positions of the layer's input. The reference
moments are constants of the export (`export_model(..., reference_data=x)`);
`collect` accumulates the user's moments; `adapt_normalization(strength)` applies
the formula (see module.py). Why relative rather than plain AdaBN: the stored
statistics of many models differ from those measured at inference (dropout
before BN, augmentation), so replacing them outright hurts
(/work/shared/findings/speaker-adaptation.md; docs/personalization.md).
"""

import dataclasses

import keras
import numpy as np

from .keras_compat import takes_training_argument

VARIANCE_FLOOR = 1e-6  # keeps variance ratios finite for channels that never vary


@dataclasses.dataclass(frozen=True)
class NormLayer:
    """One adaptable BatchNormalization layer: its channels' slice of the flat statistics vectors."""

    name: str
    channels: int
    offset: int


def normalization_layers(graph):
    """(NormLayer, graph node) for every BatchNormalization over the last axis, in graph order."""
    found, offset = [], 0
    for node in graph.nodes:
        layer = node.layer
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        rank = len(graph.shapes[node.inputs[0]])
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[-1]
        if axis % rank != rank - 1 or len(node.inputs) != 1:
            continue
        channels = int(graph.shapes[node.inputs[0]][-1])
        found.append((NormLayer(layer.name, channels, offset), node))
        offset += channels
    return found


def trained_statistics(nodes):
    """The stored moving mean and variance of every adaptable layer, concatenated (float64)."""
    mean = [np.asarray(keras.ops.convert_to_numpy(node.layer.moving_mean), np.float64) for _, node in nodes]
    var = [np.asarray(keras.ops.convert_to_numpy(node.layer.moving_variance), np.float64) for _, node in nodes]
    return np.concatenate(mean), np.concatenate(var)


def reference_moments(graph, nodes, x, batch_size=64):
    """Per-channel mean and variance of each adaptable layer's input over `x`, at inference, unadapted.

    Returns two float64 vectors in the flat order of `nodes`, and the per-sample channel means (a matrix,
    one row per sample, same order) that `typicality_scores` reads.
    """
    wanted = {id(node): norm for norm, node in nodes}
    total = sum(norm.channels for norm, _ in nodes)
    sums, squares, counts = np.zeros(total), np.zeros(total), np.zeros(total)
    per_sample = []

    def call(node, args, kwargs):
        norm = wanted.get(id(node))
        if norm is not None:
            value = np.asarray(keras.ops.convert_to_numpy(args[0]), np.float64)
            part = slice(norm.offset, norm.offset + norm.channels)
            per_sample[-1][:, part] = value.reshape(len(value), -1, norm.channels).mean(axis=1)
            value = value.reshape(-1, norm.channels)
            sums[part] += value.sum(axis=0)
            squares[part] += (value * value).sum(axis=0)
            counts[part] += value.shape[0]
        if takes_training_argument(node.layer):
            kwargs["training"] = False
        return node.layer(*args, **kwargs)

    x = np.asarray(x)
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        per_sample.append(np.zeros((len(batch), total)))
        graph.evaluate([keras.ops.convert_to_tensor(batch)], call)
    mean = sums / np.maximum(counts, 1.0)
    var = np.maximum(squares / np.maximum(counts, 1.0) - mean * mean, VARIANCE_FLOOR)
    return mean, var, np.concatenate(per_sample)


# The share of the reference pool below the typicality limit. 0.95: 5 % of in-domain samples are flagged (and
# left out), and a CIFAR user with half Fashion-MNIST photos keeps its worst decile above dense; 0.99 let too
# many of those photos through, 0.9 cost the clean users a point (docs/personalization.md, benchmarks/open_set.py).
TYPICALITY_QUANTILE = 0.95


def layer_typicality(sample_means, nodes, mean, var):
    """Per sample and adaptable layer: the mean over channels of (sample's channel mean − μ_ref)² / σ²_ref.

    How far a sample's BN inputs sit from the reference pool's; a matrix (samples × layers).
    """
    z = (np.asarray(sample_means) - mean) ** 2 / np.maximum(var, VARIANCE_FLOOR)
    return np.stack([z[:, n.offset:n.offset + n.channels].mean(axis=1) for n, _ in nodes], axis=1)


def typicality_limits(sample_means, nodes, mean, var):
    """The constants of the in-graph typicality: each layer's and the combined score's `TYPICALITY_QUANTILE`.

    A sample's typicality (what `collect` returns, levers/normalization/graph.py) is
    max over layers of (layer score / that layer's limit), divided by the combined limit: the reference pool
    itself has 5 % above 1. The maximum over layers, not the mean: an image of another dataset often stands out
    in one deep layer only (docs/personalization.md, "Users whose data is not the model's world").
    """
    scores = layer_typicality(sample_means, nodes, mean, var)
    per_layer = np.maximum(np.quantile(scores, TYPICALITY_QUANTILE, axis=0), VARIANCE_FLOOR)
    combined = max(float(np.quantile((scores / per_layer).max(axis=1), TYPICALITY_QUANTILE)), VARIANCE_FLOOR)
    return per_layer, combined


def adapted_statistics(trained_mean, trained_var, reference_mean, reference_var, user_mean, user_var, strength):
    """The relative-AdaBN formula in numpy: the reference for the in-graph signature and for tests."""
    mean = trained_mean + strength * (user_mean - reference_mean)
    ratio = np.maximum(user_var, VARIANCE_FLOOR) / np.maximum(reference_var, VARIANCE_FLOOR)
    return mean, trained_var * ratio ** strength
