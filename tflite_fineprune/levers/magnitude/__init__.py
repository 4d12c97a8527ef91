"""Magnitude pruning: prune the hidden units whose mean |activation| × outgoing weight norm is lowest.

Activity frequency (`prune`) treats a unit that fires often but weakly, into
weights the next layer scales to almost nothing, as important. This score
weighs what a unit actually passes on: its mean absolute activation over the
observed data times the L2 norm of its outgoing weights, the next layer's
BatchNorm scale folded in (outgoing_norms.py, in this folder). Measured on Fashion-MNIST
class-subset users it keeps accuracy at much higher sparsity than activity
frequency (docs/personalization.md, "Magnitude pruning").
"""

from __future__ import annotations

import numpy as np

from ... import signatures as sig
from ...errors import ModelError, StateError
from ...input_checks import check_sparsity
from ..base import ExportFlag, Lever, StateBlock, run_prune, vector

BLOCK = StateBlock(flag=16, fields=(sig.MAGNITUDES,), since=4, what="activation-magnitude",
                   lengths=lambda units, shape: (units,))


class MagnitudePruningMethods:
    def prune_magnitude(self, sparsity: float):
        """Prune each hidden layer's lowest-scoring units (mean |activation| × outgoing weight norm) to `sparsity`.

        Cumulative like `prune`: units pruned before stay pruned, and every
        layer keeps at least one unit. Needs observed data and a model
        exported with magnitude pruning (the default).

        Parameters
        ----------
        sparsity : float
            The fraction of each hidden layer's units to prune, in [0, 1).

        Returns
        -------
        Sparsity
            The sparsity of the masks now in use (`Personalizer.sparsity`).

        Raises
        ------
        ModelError
            When the export has no magnitude pruning.
        FinePruneError
            When `sparsity` is not in [0, 1), or nothing was observed yet.
        """
        value = check_sparsity(sparsity)
        if not LEVER.in_model(self.metadata):
            raise ModelError(f"{self.model_path} was exported without magnitude pruning "
                             "(ExportOptions.magnitude_pruning)")
        return run_prune(self, sig.PRUNE_MAGNITUDE, sig.SPARSITY, value, "prune_magnitude")


class MagnitudePruning(Lever):
    """State: `magnitudes`, per unit the summed per-sample mean |activation| (zero for output units)."""

    name = "magnitude_pruning"
    signatures = (sig.PRUNE_MAGNITUDE, sig.SET_MAGNITUDES)
    block = BLOCK
    set_signature = sig.SET_MAGNITUDES
    methods = MagnitudePruningMethods
    option = "magnitude_pruning"
    flag = ExportFlag("--no-magnitude-pruning", dict(
        action="store_false", help="leave out magnitude pruning (prune_magnitude; a smaller state, a cheaper collect)"))

    def feed(self, metadata, state):
        if state.magnitudes is None:
            return None
        values = vector(state.magnitudes, metadata.num_units, sig.MAGNITUDES)
        if np.any(values < 0):
            raise StateError("magnitudes must be non-negative")
        return {sig.MAGNITUDES: values}

    def slim_variables(self, metadata, state, masks):
        values = state.magnitudes if state.magnitudes is not None else np.zeros(metadata.num_units)
        return {sig.MAGNITUDES: np.asarray(values, np.float32)}


LEVER = MagnitudePruning()
