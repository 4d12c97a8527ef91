"""Mean compensation: a pruned hidden unit outputs its mean activation over the observed data instead of 0."""

from __future__ import annotations

import numpy as np

from ... import signatures as sig
from ..base import Lever, StateBlock, vector

BLOCK = StateBlock(flag=1, fields=(sig.SUMS, sig.FILL), since=1, what="mean-compensation",
                   lengths=lambda units, shape: (units, units))


class MeanCompensation(Lever):
    """No method of its own: `prune` and `prune_dormant` freeze the fill values in the graph."""

    name = "mean_compensation"
    signatures = (sig.SET_COMPENSATION,)
    block = BLOCK
    set_signature = sig.SET_COMPENSATION
    option = "mean_compensation"
    metadata_fields = ("mean_compensation",)

    def in_model(self, metadata):
        return bool(metadata.mean_compensation)

    def slim_variables(self, metadata, state, masks):
        zeros = np.zeros(metadata.num_units, np.float32)
        fill = np.asarray(state.fill if state.fill is not None else zeros, np.float32) * (1 - masks)
        return {sig.FILL: fill, sig.SUMS: np.asarray(state.sums if state.sums is not None else zeros, np.float32)}

    def validate_metadata(self, metadata, check):
        if not isinstance(metadata.mean_compensation, bool):
            check.fail("mean_compensation", metadata.mean_compensation, "true or false")

    def feed(self, metadata, state):
        n = metadata.num_units
        return {sig.SUMS: vector(state.sums, n, sig.SUMS), sig.FILL: vector(state.fill, n, sig.FILL)}


LEVER = MeanCompensation()
