"""Classifier prototypes (T3A, Iwasawa & Matsuo, NeurIPS 2021): which Dense layer, and the formulas.

T3A adjusts a trained classifier at test time without backprop: per class it
keeps a set of *supports* — the class's normalised classifier weight ŵ_c and
the normalised penultimate features of confidently pseudo-labelled test
samples — and classifies with their normalised mean (the prototype). Here, in a
streaming graph with builtin ops only:

    collect:           S_c += Σ_i w_ic · f_i/‖f_i‖,   N_c += Σ_i w_ic,
                       w_ic = p_ic if max_c p_ic ≥ τ else 0
    adapt_classifier:  u_c = (ŵ_c + S_c) / ‖ŵ_c + S_c‖,   P_c = ‖W_c‖ · u_c,
                       W'_c = (1 − β)·W_c + β·P_c      (bias unchanged)

f = the input of the model's final Dense layer (D features), W its trained
kernel (columns W_c), p the model's current class posteriors (masks and prior
weights included), τ an export-time constant, β the signature's `strength`.

Deviations from T3A, each because the graph streams and stays small:
- soft, confidence-filtered weights (p_ic where max p ≥ τ) instead of hard
  arg-max labels kept for the M lowest-entropy supports per class: a top-M
  filter needs every support stored and sorted; sums need C×D floats;
- pseudo-labels come from the model's current output (after prune_outputs,
  prior correction and any earlier adapt_classifier), not the frozen trained
  classifier, so excluded classes gain no support;
- P keeps each class's trained norm ‖W_c‖ and bias, and only the direction
  moves: T3A's logits z·u_c (no bias) are on another scale than the trained
  ones, so a blend with the trained classifier would be dominated by it; with
  the trained norm and bias a class without support keeps its trained logit
  exactly (u_c = ŵ_c), and β = 0 is the trained classifier.
"""

import keras
import numpy as np

from ..errors import ModelError
from .options import DEFAULT_PROTOTYPE_CONFIDENCE
from ..input_checks import check_unit_interval

DEFAULT_CONFIDENCE = DEFAULT_PROTOTYPE_CONFIDENCE  # one definition, with the other options
NORM_FLOOR = 1e-12  # a zero feature vector or kernel column stays zero instead of dividing by zero
_PASS_THROUGH = (keras.layers.Activation, keras.layers.Softmax)


def classifier_head(graph):
    """The graph node of the final Dense layer (its input = the penultimate features), or FinePruneError.

    Only alias nodes (nested models) and activation layers may follow it.
    """
    producers = graph.producers()
    tensor = graph.outputs[0]
    while True:
        node = producers.get(tensor)
        if node is None:
            break
        if node.layer is None or isinstance(node.layer, _PASS_THROUGH):
            tensor = node.inputs[0]
            continue
        if isinstance(node.layer, keras.layers.Dense) and len(node.inputs) == 1:
            rank = len(graph.shapes[node.inputs[0]])
            if rank != 2:
                raise ModelError(f"classifier_prototypes needs the final Dense layer {node.name!r} to take "
                                 f"(batch, features) input; it takes rank {rank}")
            if getattr(node.layer, "lora_enabled", False) or getattr(node.layer, "quantization_mode", None):
                raise ModelError(f"classifier_prototypes: the final Dense layer {node.name!r} uses LoRA or "
                                 "quantization; export a plain Dense head")
            return node
        break
    found = type(node.layer).__name__ if node is not None and node.layer is not None else "an input"
    raise ModelError(f"classifier_prototypes needs a model that ends in a Dense classifier (optionally followed "
                     f"by an activation); this model's output comes from {found}")


def check_confidence(value):
    return check_unit_interval(value, "prototype_confidence")


def support_sums(features, posteriors, confidence):
    """Numpy reference of what `collect` adds: (S [C, D], N [C]) for features [B, D], posteriors [B, C]."""
    f = np.asarray(features, np.float64)
    p = np.asarray(posteriors, np.float64)
    f_hat = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), NORM_FLOOR)
    weights = p * (p.max(axis=1, keepdims=True) >= confidence)
    return weights.T @ f_hat, weights.sum(axis=0)


def adapted_kernel(kernel, sums, strength):
    """Numpy reference of `adapt_classifier`: W' [D, C] from the trained W [D, C] and S [C, D]."""
    w = np.asarray(kernel, np.float64)
    norms = np.linalg.norm(w, axis=0)
    supports = (w / np.maximum(norms, NORM_FLOOR)).T + np.asarray(sums, np.float64)
    u = supports / np.maximum(np.linalg.norm(supports, axis=1, keepdims=True), NORM_FLOOR)
    return (1.0 - strength) * w + strength * u.T * norms
