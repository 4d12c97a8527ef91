"""Dormant pruning: prune every hidden unit whose activity is below a threshold."""

from __future__ import annotations


from ... import signatures as sig
from ...input_checks import check_unit_interval
from ..base import Lever, run_prune


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
        return run_prune(self, sig.PRUNE_DORMANT, sig.THRESHOLD, value, "prune_dormant")


class DormantPruning(Lever):
    name = "dormant_pruning"
    signatures = (sig.PRUNE_DORMANT,)
    methods = DormantPruningMethods


LEVER = DormantPruning()
