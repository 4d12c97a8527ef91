"""Dormant pruning: prune every hidden unit whose activity is below a threshold."""

from __future__ import annotations

import numpy as np

from ... import signatures as sig
from ...errors import FinePruneError
from ...input_checks import check_unit_interval
from ..base import Lever


class DormantPruningMethods:
    def prune_dormant(self, threshold: float):
        """Prune every hidden unit active on less than `threshold` of the observed (sample, position) pairs.

        Each layer keeps at least its most active unit.

        Parameters
        ----------
        threshold : float
            Activity frequency in [0, 1]: the share of (sample, position) pairs on which a unit was > 0.

        Returns
        -------
        Sparsity
            The sparsity of the masks now in use (`Personalizer.sparsity`).

        Raises
        ------
        FinePruneError
            When `threshold` is not in [0, 1] or nothing was observed yet.
        """
        value = check_unit_interval(threshold, "threshold")
        if self.samples == 0:
            raise FinePruneError("no activity observed yet: call observe() before prune_dormant()")
        self._call(sig.PRUNE_DORMANT, **{sig.THRESHOLD: np.array(value, np.float32)})
        return self.sparsity()


class DormantPruning(Lever):
    name = "dormant_pruning"
    signatures = (sig.PRUNE_DORMANT,)
    methods = DormantPruningMethods


LEVER = DormantPruning()
