"""Mean compensation: a pruned hidden unit outputs its mean activation over the observed data instead of 0."""

from __future__ import annotations

from .. import signatures as sig
from .base import Lever, StateBlock, vector

BLOCK = StateBlock(flag=1, fields=(sig.SUMS, sig.FILL), since=1, what="mean-compensation",
                   lengths=lambda units, shape: (units, units))


class MeanCompensation(Lever):
    """No method of its own: `prune` and `prune_dormant` freeze the fill values in the graph."""

    name = "mean_compensation"
    signatures = (sig.SET_COMPENSATION,)
    block = BLOCK
    set_signature = sig.SET_COMPENSATION

    def in_model(self, metadata):
        return bool(metadata.mean_compensation)

    def feed(self, metadata, state):
        n = metadata.num_units
        return {sig.SUMS: vector(state.sums, n, sig.SUMS), sig.FILL: vector(state.fill, n, sig.FILL)}


LEVER = MeanCompensation()
