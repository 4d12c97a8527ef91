"""Rate pruning: prune the least active hidden units until each layer (or the model) reaches a sparsity."""

from __future__ import annotations

import numpy as np

from .. import signatures as sig
from ..errors import FinePruneError
from ..inputs import check_sparsity
from .base import Lever


class RatePruningMethods:
    def prune(self, sparsity: float):
        """Prune the least active hidden units so each layer (or the model, by the export's policy) reaches `sparsity`.

        Cumulative: units pruned before stay pruned, and every layer keeps at
        least one unit. Needs observed data.

        Parameters
        ----------
        sparsity : float
            The fraction of hidden units to prune, in [0, 1).

        Returns
        -------
        Sparsity
            The sparsity of the masks now in use (`Personalizer.sparsity`).

        Raises
        ------
        FinePruneError
            When `sparsity` is not in [0, 1) or nothing was observed yet.
        """
        value = check_sparsity(sparsity)
        if self.samples == 0:
            raise FinePruneError("no activity observed yet: call observe() with the user's data before prune()")
        self._call(sig.PRUNE, **{sig.SPARSITY: np.array(value, np.float32)})
        return self.sparsity()


class RatePruning(Lever):
    """Every export carries it (the in-graph policy of `metadata.policy`); its state is the core masks/counters."""

    name = "rate_pruning"
    signatures = (sig.PRUNE,)
    methods = RatePruningMethods

    def in_model(self, metadata):
        return True


LEVER = RatePruning()
