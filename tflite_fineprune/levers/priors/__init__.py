"""Prior correction: reweight the outputs by the user's class priors, estimated without labels by EM."""

from __future__ import annotations

import dataclasses

import numpy as np

from ... import signatures as sig
from ...errors import FinePruneError, ModelError
from ...input_checks import check_positive_int
from ..base import Lever, StateBlock, vector

BLOCK = StateBlock(flag=2, fields=(sig.LOG_WEIGHTS, sig.SOFT_COUNTS), since=1, what="class-prior",
                   lengths=lambda units, shape: (shape[0], shape[0]))


class PriorCorrectionMethods:
    def correct_priors(self, x, iterations: int = 20, batch_size: int = None) -> np.ndarray:
        """Estimate the user's class priors from unlabeled `x` by EM and reweight the outputs.

        Each iteration observes `x` once (activity counters accumulate too) and
        runs one `update_priors` step. Needs a model exported with
        `prior_correction=True`.

        Parameters
        ----------
        x : array_like or iterable of array_like
            The user's unlabeled samples, as for `observe` (held in memory: every iteration passes over them).
        iterations : int
            EM steps (each one pass over `x`).
        batch_size : int, optional
            Samples per interpreter call (default: the `Personalizer`'s `batch_size`).

        Returns
        -------
        numpy.ndarray
            The estimated class priors, one per class, summing to 1.

        Raises
        ------
        ModelError
            When the export has no prior correction.
        InputError
            When the samples are refused.
        FinePruneError
            When `iterations` is not a positive integer.
        """
        if not LEVER.in_model(self.metadata):
            raise ModelError(f"{self.model_path} was exported without prior_correction")
        iterations = check_positive_int(iterations, "iterations")
        if iterations is None:
            raise FinePruneError("iterations must be a positive integer, got None")
        batches = list(self._batches(x, batch_size))  # every iteration passes over the data again
        state = self.get_state()
        self.set_state(dataclasses.replace(state, soft_counts=np.zeros_like(state.soft_counts)))
        for _ in range(iterations):
            for batch in batches:
                self._call(sig.COLLECT, **{sig.INPUT: batch})
            weights = self._call(sig.UPDATE_PRIORS, **{sig.TOKEN: np.array(0, np.int32)})[sig.LOG_WEIGHTS]
        prior = np.exp(weights) / self.metadata.num_classes
        return prior / prior.sum()


class PriorCorrection(Lever):
    name = "prior_correction"
    signatures = (sig.UPDATE_PRIORS, sig.SET_PRIORS)
    block = BLOCK
    set_signature = sig.SET_PRIORS
    option = "prior_correction"
    metadata_fields = ("prior_correction",)
    methods = PriorCorrectionMethods

    def in_model(self, metadata):
        return bool(metadata.prior_correction)

    def block_shape(self, metadata):
        return (metadata.num_classes,)

    def slim_variables(self, metadata, state, masks):
        classes = np.zeros(metadata.num_classes, np.float32)
        weights = state.log_weights if state.log_weights is not None else classes
        return {sig.LOG_WEIGHTS: np.asarray(weights, np.float32), sig.SOFT_COUNTS: classes}

    def validate_metadata(self, metadata, check):
        if not isinstance(metadata.prior_correction, bool):
            check.fail("prior_correction", metadata.prior_correction, "true or false")

    def feed(self, metadata, state):
        c = metadata.num_classes
        return {sig.LOG_WEIGHTS: vector(state.log_weights, c, sig.LOG_WEIGHTS),
                sig.SOFT_COUNTS: vector(state.soft_counts, c, sig.SOFT_COUNTS)}


LEVER = PriorCorrection()
