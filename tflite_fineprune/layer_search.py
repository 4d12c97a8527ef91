"""Step 5 layer by layer: each hidden layer gets its own rate, and the evidence is spent where the MACs are.

`recipe.search_sparsity` prunes every hidden layer to one rate. In a convnet the layers differ: most MACs sit
in the wide convs, most weights in the dense layer, and the first disagreement may come from a layer that
saves little. `search_layerwise` keeps step 5's stopping rule (`stopping.StoppingRule`: every measurement is
against the model before step 5, on the user's samples) and changes only which pruned models it measures:

1. **The ladder**: for each rate r of `rates`, `prune_magnitude(r)` from the model before step 5, its masks
   read back (`get_state`). The signature prunes each layer on its own scores, so the ladder holds, per layer,
   the units it drops at each rate; a mask with layer ℓ at rate r_ℓ is put together on the host and set with
   `set_state` (no new signature, every export since magnitude pruning has what it needs).
2. **Greedy by MACs per unit of shift**: from every layer at rate 0, each step tries every layer still open one
   rate further. Candidates the rule rejects close their layer (pruning it further only moves the predictions
   more). Of the accepted ones the step keeps the one that removes the most MACs per unit of mean distribution
   shift added, Δmacs / (Δshift + `SHIFT_FLOOR`). It ends when no layer is open.

The rule's bounds are the same as the uniform search's: the Clopper–Pearson bound on the disagreement rate and
the bound on the mean shift, both against the model before step 5, so the whole path is held to the limits
once, not per step. The price is more passes: one `infer` over the samples per candidate tried (at most
layers × rates; a convnet of four hidden layers took 20–40, see docs/personalization.md).
"""

import dataclasses

import numpy as np

from .sparsity import measure_sparsity
from .stopping import StoppingRule, measure, posteriors

SHIFT_FLOOR = 1e-3  # shifts below this much count as equal: then the MACs removed decide


@dataclasses.dataclass(frozen=True)
class LayerwiseResult:
    """What `search_layerwise` chose: per hidden layer the rate kept, and what was measured on the way."""

    rates: tuple  # per hidden group (metadata order), the rate kept (0.0: not pruned by step 5)
    macs: float  # fraction of the MACs removed by the masks kept
    passes: int  # inference passes over the samples
    steps: tuple  # (layer name, rate, Evidence) of every candidate accepted, in order
    stops: tuple  # (layer name, rate, Evidence) of the candidate that closed each layer, when one did


def rate_ladder(personalizer, rates):
    """Masks of `prune_magnitude(rate)` for each rate, from the current state (which is restored)."""
    base = personalizer.get_state()
    ladder = []
    for rate in rates:
        personalizer.prune_magnitude(rate)
        ladder.append(personalizer.get_state().masks.copy())
        personalizer.set_state(base)
    return ladder


def compose(masks, ladder, groups, levels):
    """`masks` with hidden group i's part taken from `ladder[levels[i]]` (level −1: left as it is)."""
    masks = masks.copy()
    for group, level in zip(groups, levels):
        if level >= 0:
            part = slice(group.offset, group.offset + group.units)
            masks[part] = ladder[level][part]
    return masks


def search_layerwise(personalizer, x, rule=None, rates=None, batch_size=None, ladder=None, classes=None):
    """Greedy per-layer step 5 on samples `x` (module docstring); leaves the model at the masks kept.

    Parameters
    ----------
    personalizer : Personalizer
        The model as steps 2–4 left it (the reference every candidate is measured against).
    x : array_like
        The user's samples the rule measures on.
    rule : StoppingRule, optional
        When a candidate is accepted (default: `StoppingRule()`).
    rates : sequence of float, optional
        The rates each layer climbs through (default: `recipe.SPARSITY_STEPS`).
    batch_size : int, optional
        Samples per interpreter call.
    ladder : list of ndarray, optional
        Masks per rate (`rate_ladder`); computed here when not given (a benchmark passes another score's).
    classes : int, optional
        Classes in play (default: counted from the output mask, as `recipe.classes_in_play`).

    Returns
    -------
    LayerwiseResult
        The rates kept per hidden layer, the MACs removed, the passes made and the evidence of each step.
    """
    from .auto_recipe import SPARSITY_STEPS, classes_in_play  # at call time: the recipe module is the larger import

    rule = rule or StoppingRule()
    rates = tuple(rates or SPARSITY_STEPS)
    meta = personalizer.metadata
    groups = meta.hidden_groups
    base = personalizer.get_state()
    in_play = classes_in_play(meta, base.masks) if classes is None else classes
    if in_play < 2 or not groups:
        return LayerwiseResult(tuple(0.0 for _ in groups), measure_sparsity(meta, base.masks).macs, 0, (), ())
    ladder = ladder if ladder is not None else rate_ladder(personalizer, rates)
    kind = meta.output_kind
    reference = posteriors(personalizer.predict(x, batch_size=batch_size), kind)
    levels = [-1] * len(groups)
    current = base.masks
    current_macs, current_shift = measure_sparsity(meta, current).macs, 0.0
    open_layers, steps, stops, passes = set(range(len(groups))), [], [], 0
    while open_layers:
        best = None
        for i in sorted(open_layers):
            if levels[i] + 1 >= len(rates):
                open_layers.discard(i)
                continue
            trial = list(levels)
            trial[i] += 1
            masks = compose(base.masks, ladder, groups, trial)
            while np.array_equal(masks, current) and trial[i] + 1 < len(rates):  # rates below its dormant share
                trial[i] += 1
                masks = compose(base.masks, ladder, groups, trial)
            if np.array_equal(masks, current):
                open_layers.discard(i)
                continue
            personalizer.set_state(dataclasses.replace(base, masks=masks))
            evidence = measure(rates[trial[i]], reference,
                               posteriors(personalizer.predict(x, batch_size=batch_size), kind))
            passes += 1
            if not rule.accepts(evidence, in_play):
                open_layers.discard(i)
                stops.append((groups[i].name, rates[trial[i]], evidence))
                continue
            macs = measure_sparsity(meta, masks).macs
            value = (macs - current_macs) / (max(evidence.shift_mean - current_shift, 0.0) + SHIFT_FLOOR)
            if best is None or value > best[0]:
                best = (value, i, trial, masks, macs, evidence)
        if best is None:
            break
        _, i, levels, current, current_macs, evidence = best
        current_shift = evidence.shift_mean
        steps.append((groups[i].name, rates[levels[i]], evidence))
    personalizer.set_state(dataclasses.replace(base, masks=current))
    kept = tuple(rates[level] if level >= 0 else 0.0 for level in levels)
    return LayerwiseResult(kept, current_macs, passes, tuple(steps), tuple(stops))
