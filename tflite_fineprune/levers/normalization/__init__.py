"""Normalization shift (relative AdaBN): move BatchNorm statistics toward the user's data, relative to a reference."""

from __future__ import annotations

import numpy as np

from ... import signatures as sig
from ...errors import ModelError, StateError
from ..base import Lever, StateBlock, run_adapt, vector

FIELDS = (sig.NORM_SUMS, sig.NORM_SQUARES, sig.NORM_COUNT, sig.NORM_MEAN, sig.NORM_VAR)  # file order
BLOCK = StateBlock(flag=4, fields=FIELDS, since=2, what="normalization",
                   lengths=lambda units, shape: (shape[0],) * len(FIELDS))


class NormalizationMethods:
    def adapt_normalization(self, strength: float):
        """Shift BatchNorm statistics toward the observed data, relative to the export's reference pool.

        mean ← m₀ + strength·(μ_user − μ_ref), var ← v₀·(σ²_user/σ²_ref)^strength
        per channel, with the moments `observe` accumulated. Needs a model
        exported with `reference_data`.

        Parameters
        ----------
        strength : float
            In [0, 1]: 0 keeps the trained statistics, 1 moves them all the way to the user's.

        Returns
        -------
        mean, variance : numpy.ndarray
            The BatchNorm statistics now in use, every adapted layer's channels in one flat vector each
            (`metadata.normalization_layers` gives each layer's offset).

        Raises
        ------
        ModelError
            When the export has no normalization statistics.
        FinePruneError
            When `strength` is not in [0, 1], or nothing was observed yet.
        """
        if not LEVER.in_model(self.metadata):
            raise ModelError(f"{self.model_path} was exported without normalization statistics "
                             "(export_model(..., reference_data=x))")
        out = run_adapt(self, sig.ADAPT_NORMALIZATION, strength, "adapt_normalization")
        return np.array(out[sig.NORM_MEAN]), np.array(out[sig.NORM_VAR])


class NormalizationShift(Lever):
    """Metadata: `normalization_layers` = (BN layer name, channels, offset) into the flat vectors."""

    name = "normalization_shift"
    signatures = (sig.ADAPT_NORMALIZATION, sig.SET_NORMALIZATION)
    block = BLOCK
    set_signature = sig.SET_NORMALIZATION
    option = "reference_data"
    metadata_fields = ("normalization_layers",)
    methods = NormalizationMethods

    def in_model(self, metadata):
        return bool(metadata.normalization_layers)

    def block_shape(self, metadata):
        return (metadata.normalization_channels,)

    def slim_variables(self, metadata, state, masks):
        """The BatchNorm statistics in use (and the moments, which nothing reads in a slim file)."""
        return {name: np.asarray(getattr(state, name), np.float32) for name in FIELDS
                if getattr(state, name) is not None}

    def feed(self, metadata, state):
        if state.norm_mean is None:
            return None  # e.g. a version-1 state file: set_state resets to the trained statistics
        b = metadata.normalization_channels
        feed = {name: vector(getattr(state, name), b, name) for name in FIELDS}
        if np.any(feed[sig.NORM_COUNT] < 0) or np.any(feed[sig.NORM_VAR] <= 0):
            raise StateError("normalization counts must be ≥ 0 and variances > 0")
        return feed

    def validate_metadata(self, metadata, check):
        offset = 0
        for entry in metadata.normalization_layers:
            if len(entry) != 3:
                check.fail("normalization_layers", entry, "[layer name, channels, offset] triples")
            name, channels, start = entry
            check.text(name, "normalization layer name")
            check.integer(channels, f"channels of normalization layer {name!r}", minimum=1)
            if not check.is_int(start) or start != offset:
                check.fail(f"offset of normalization layer {name!r}", start, f"{offset} (layers are contiguous)")
            offset += channels


LEVER = NormalizationShift()
