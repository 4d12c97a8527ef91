"""Classifier prototypes (T3A): blend the final Dense kernel toward the user's pseudo-labelled class prototypes."""

from __future__ import annotations

import numpy as np

from ... import signatures as sig
from ...errors import ModelError, StateError
from ..base import ExportFlag, Lever, StateBlock, run_adapt, vector

FIELDS = (sig.PROTO_COUNTS, sig.PROTO_SUMS, sig.HEAD_KERNEL)  # file order


class _PrototypeBlock(StateBlock):
    def check(self, values, source):
        if np.any(values[sig.PROTO_COUNTS] < 0):
            raise StateError(f"{source} holds negative classifier-prototype counts")


# shape = (C classes, D features into the final Dense layer): counts [C], sums [C·D], kernel [D·C]
BLOCK = _PrototypeBlock(flag=8, fields=FIELDS, since=3, what="classifier-prototype",
                        lengths=lambda units, shape: (shape[0], shape[0] * shape[1], shape[1] * shape[0]))


class PrototypeMethods:
    def adapt_classifier(self, strength: float) -> np.ndarray:
        """Blend the final Dense kernel toward the user's class prototypes (T3A; export/prototypes.py).

        W' = (1 − strength)·W + strength·P, where P_c keeps the trained norm of
        class c's weight vector and points along the normalised sum of ŵ_c and
        the observed confidently pseudo-labelled features; the bias is kept.
        strength = 0 restores the trained kernel. Needs a model exported with
        `classifier_prototypes=True`; not part of `personalize` (see
        docs/personalization.md, "T3A prototypes").

        Parameters
        ----------
        strength : float
            In [0, 1]: 0 restores the trained kernel, 1 uses the prototypes alone.

        Returns
        -------
        numpy.ndarray
            The kernel now in use, of shape (features D, classes C).

        Raises
        ------
        ModelError
            When the export has no classifier prototypes.
        FinePruneError
            When `strength` is not in [0, 1], or nothing was observed yet.
        """
        if not LEVER.in_model(self.metadata):
            raise ModelError(f"{self.model_path} was exported without classifier prototypes "
                             "(export_model(..., classifier_prototypes=True))")
        out = run_adapt(self, sig.ADAPT_CLASSIFIER, strength, "adapt_classifier")
        return np.array(out[sig.HEAD_KERNEL]).reshape(self.metadata.head_features, self.metadata.num_classes)


class ClassifierPrototypes(Lever):
    """Metadata: `classifier_head` = (final Dense layer name, features D, confidence τ)."""

    name = "classifier_prototypes"
    signatures = (sig.ADAPT_CLASSIFIER, sig.SET_PROTOTYPES)
    block = BLOCK
    set_signature = sig.SET_PROTOTYPES
    methods = PrototypeMethods
    option = "classifier_prototypes"
    flag = ExportFlag("--classifier-prototypes", dict(
        action="store_true", help="add T3A classifier prototypes (adapt_classifier; docs/personalization.md)"))
    metadata_fields = ("classifier_head",)

    def in_model(self, metadata):
        return bool(metadata.classifier_head)

    def block_shape(self, metadata):
        return (metadata.num_classes, metadata.head_features)

    def slim_variables(self, metadata, state, masks):
        """The classifier kernel in use (adapt_classifier), [D, C] as the variable."""
        if state.head_kernel is None:
            return {}
        return {sig.HEAD_KERNEL: np.asarray(state.head_kernel, np.float32).reshape(metadata.head_features,
                                                                                   metadata.num_classes)}

    def feed(self, metadata, state):
        if state.head_kernel is None:
            return None  # e.g. a version-2 state file: set_state resets to the trained kernel
        c, d = self.block_shape(metadata)
        flat = {name: None if getattr(state, name) is None else np.ravel(getattr(state, name))
                for name in FIELDS}  # [C, D] / [D, C] arrays are accepted as well as flat ones
        feed = {sig.PROTO_SUMS: vector(flat[sig.PROTO_SUMS], c * d, sig.PROTO_SUMS),
                sig.PROTO_COUNTS: vector(flat[sig.PROTO_COUNTS], c, sig.PROTO_COUNTS),
                sig.HEAD_KERNEL: vector(flat[sig.HEAD_KERNEL], d * c, sig.HEAD_KERNEL)}
        if np.any(feed[sig.PROTO_COUNTS] < 0):
            raise StateError("proto_counts must be ≥ 0")
        return feed

    def validate_metadata(self, metadata, check):
        if not metadata.classifier_head:
            return
        if len(metadata.classifier_head) != 3:
            check.fail("classifier_head", metadata.classifier_head, "[layer name, features, confidence] or []")
        name, features, confidence = metadata.classifier_head
        check.text(name, "classifier_head layer name")
        check.integer(features, "classifier_head features", minimum=1)
        check.number(confidence, "classifier_head confidence", minimum=0.0)
        if confidence > 1:
            check.fail("classifier_head confidence", confidence, "a number in [0, 1]")


LEVER = ClassifierPrototypes()
