"""Exact unit, weight and MAC sparsity of a mask vector, from the model metadata."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Sparsity:
    """Fractions removed by the current masks (0 = dense model).

    `weights` and `macs` count a weight as removed when the unit it produces
    or the unit it reads is pruned; BatchNorm parameters and biases of a
    pruned unit are removed with it.

    Attributes
    ----------
    units : float
        Fraction of the units (hidden and output) pruned, in [0, 1].
    weights : float
        Fraction of the weights removed, in [0, 1].
    macs : float
        Fraction of the multiply-accumulates of one inference removed, in [0, 1].
    pruned_units, total_units : int
        Units pruned, and all units.
    remaining_weights, total_weights : int
        Weights left, and all weights of the layers with units.
    remaining_macs, total_macs : int
        Multiply-accumulates per inference left, and in the dense model.
    """

    units: float
    weights: float
    macs: float
    pruned_units: int
    total_units: int
    remaining_weights: int
    total_weights: int
    remaining_macs: int
    total_macs: int


def _alive_inputs(layer, alive_by_group):
    """Per-channel 0/1 vector of the layer's live input channels (before `repeat`)."""
    parts, repeats = [], []
    for group, channels, repeat in layer.in_segments:
        parts.append(alive_by_group[group] if group is not None else np.ones(channels))
        repeats.append(np.full(channels, repeat))
    return np.concatenate(parts), np.concatenate(repeats)


def layer_cost(layer, alive_by_group):
    """(weights, macs) that a weight layer still uses under the given masks."""
    alive_out = alive_by_group[layer.out_group] if layer.out_group is not None else np.ones(layer.out_channels)
    alive_in, repeat = _alive_inputs(layer, alive_by_group)
    if layer.kind == "depthwise":
        reads = alive_in[np.arange(layer.out_channels) // layer.depth_multiplier]
        pairs = float(np.sum(alive_out * reads))
    else:
        pairs = float(np.sum(alive_in * repeat)) * float(np.sum(alive_out))
    weights = layer.kernel_positions * pairs + layer.params_per_output * float(np.sum(alive_out))
    macs = layer.output_positions * layer.kernel_positions * pairs
    return weights, macs


def measure_sparsity(metadata, masks):
    masks = np.asarray(masks, dtype=np.float64)
    alive_by_group = {i: masks[g.offset:g.offset + g.units] for i, g in enumerate(metadata.groups)}
    full_by_group = {i: np.ones(g.units) for i, g in enumerate(metadata.groups)}
    removed_weights = removed_macs = 0.0
    for layer in metadata.weight_layers:
        w_full, m_full = layer_cost(layer, full_by_group)
        w_now, m_now = layer_cost(layer, alive_by_group)
        removed_weights += w_full - w_now
        removed_macs += m_full - m_now
    total_units = metadata.num_units
    pruned = int(round(total_units - masks.sum()))
    remaining_weights = int(round(metadata.total_weights - removed_weights))
    remaining_macs = int(round(metadata.total_macs - removed_macs))
    return Sparsity(
        units=pruned / total_units if total_units else 0.0,
        weights=removed_weights / metadata.total_weights if metadata.total_weights else 0.0,
        macs=removed_macs / metadata.total_macs if metadata.total_macs else 0.0,
        pruned_units=pruned,
        total_units=total_units,
        remaining_weights=remaining_weights,
        total_weights=metadata.total_weights,
        remaining_macs=remaining_macs,
        total_macs=metadata.total_macs,
    )
