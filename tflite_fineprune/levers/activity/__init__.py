"""Activity pruning: prune the least active hidden units until each layer (or the model) reaches a sparsity.

A unit's activity is the share of (sample, position) pairs on which it was
> 0 (what `collect` counts, export/activity.py); the in-graph policy ranks
units by it within each layer or across the model (`POLICY_NAMES`,
export/pruning_policy.py).
"""

from __future__ import annotations


from ... import signatures as sig
from ...input_checks import check_sparsity
from ..base import ExportFlag, Lever, run_prune

POLICY_NAMES = ("layerwise", "global")  # the in-graph policies of `prune` (ModelMetadata.policy)


class ActivityPruningMethods:
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
        return run_prune(self, sig.PRUNE, sig.SPARSITY, value, "prune")


class ActivityPruning(Lever):
    """Every export carries it (the in-graph policy of `metadata.policy`); its state is the core masks/counters."""

    name = "activity_pruning"
    signatures = (sig.PRUNE,)
    methods = ActivityPruningMethods
    option = "policy"
    flag = ExportFlag("--policy", dict(choices=POLICY_NAMES, help="how the in-graph prune step ranks units: within "
                                                                   "each layer, or across all layers"))

    def in_model(self, metadata):
        return True


LEVER = ActivityPruning()
