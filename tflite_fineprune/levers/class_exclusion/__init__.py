"""Class exclusion: prune output classes the user's data (almost) never predicts."""

from __future__ import annotations

import argparse


from ... import signatures as sig
from ...errors import ModelError
from ...input_checks import check_sparsity
from ..base import ExportFlag, Lever, run_prune


class ClassExclusionMethods:
    def prune_outputs(self, min_fraction: float):
        """Prune output classes predicted on less than `min_fraction` of the observed samples.

        Parameters
        ----------
        min_fraction : float
            The share of observed samples, in [0, 1), a class must have been predicted on to stay.

        Returns
        -------
        Sparsity
            The sparsity of the masks now in use (`Personalizer.sparsity`).

        Raises
        ------
        ModelError
            When the export has no prunable output.
        FinePruneError
            When `min_fraction` is not in [0, 1), or nothing was observed yet.
        """
        value = check_sparsity(min_fraction, "min_fraction")
        if not LEVER.in_model(self.metadata):
            # What and why only; the commands add how to re-export with their own flags.
            raise ModelError(f"{self.model_path} was exported without output (class) pruning: its classes are "
                             "fixed (export option prune_outputs was False, or the output layer cannot be "
                             "pruned)")
        return run_prune(self, sig.PRUNE_OUTPUTS, sig.MIN_FRACTION, value, "prune_outputs")


class ClassExclusion(Lever):
    """The output group's units are the classes; its masks and counters are part of the core state."""

    name = "class_exclusion"
    signatures = (sig.PRUNE_OUTPUTS,)
    methods = ClassExclusionMethods
    option = "prune_outputs"
    flag = ExportFlag("--prune-outputs", dict(
        action=argparse.BooleanOptionalAction,
        help="make output classes prunable (default: wherever the output layer allows it; --prune-outputs "
             "requires it, --no-prune-outputs keeps the classes fixed)"))

    def in_model(self, metadata):
        return metadata.output_group is not None


LEVER = ClassExclusion()
