"""The open-set guard of `personalize`: how much of the user's data looks like the model's world.

On a phone a user records whatever they say: words outside the model's
vocabulary, silence, noise. A model with catch-all classes (`_unknown_`,
`_silence_` in keyword spotting) files those samples there, and they are no
evidence about which of the model's *words* the user says: counted in the
class test they inflate n until zero counts of real words look significant
(/work/shared/findings/open-set.md: at 75 % other-language clips the test
kept only `_unknown_` and the speaker ended at 0 %). The guard

- calls a sample *in-domain* when the model does not file it in a catch-all
  class (the labels come from the model's metadata);
- runs the recipe on the in-domain samples only: the class test over their
  predictions (n = their count; the catch-all classes are never excluded), the
  dormant-unit counts and the BatchNorm moments from them, and step 5 on them;
- leaves the model dense, and says why, when fewer than `min_samples` of the
  samples, or less than `min_in_domain_share` of them, are in-domain.

A model without catch-all classes (CIFAR's ResNet-8) has no such signal: every
sample counts as in-domain and the guard changes nothing
(docs/personalization.md, "Users whose data is not the model's world").
AutoRecipe.kt ports this module's rule.
"""

import dataclasses

import numpy as np

# Classes that hold "none of the model's words"; a model whose labels include them gets the guard.
OUT_OF_VOCABULARY_LABELS = ("_unknown_", "_silence_")


def out_of_vocabulary_classes(labels):
    """Indices of the catch-all classes among `labels` (the model's metadata labels), in label order."""
    return tuple(i for i, name in enumerate(labels) if name in OUT_OF_VOCABULARY_LABELS)


@dataclasses.dataclass(frozen=True)
class OpenSetCheck:
    """What the guard measured on the user's samples, and what it decided."""

    samples: int
    in_domain: int
    catch_all: tuple  # names of the classes that count as out-of-vocabulary
    enough: bool  # False: too few in-domain samples, the model stays dense
    enabled: bool = True  # False: the rule turned the guard off (min_in_domain_share < 0)

    @property
    def share(self):
        return self.in_domain / self.samples if self.samples else 0.0

    @property
    def filtered(self):
        """Whether the recipe runs on a subset (some samples looked out-of-vocabulary)."""
        return self.in_domain < self.samples

    def __str__(self):
        if not self.enabled:
            return "not checked (the guard is off: min_in_domain_share < 0)"
        if not self.catch_all:
            return "every sample counts (the model has no catch-all class to tell out-of-vocabulary data by)"
        left_out = self.samples - self.in_domain
        text = (f"{self.in_domain} of {self.samples} samples in-domain ({self.share:.0%}); "
                f"{left_out} predicted {'/'.join(self.catch_all)}")
        if not self.enough:
            return text + ": too few in-domain samples, the model stays dense"
        if self.filtered:
            return text + " left out of the class test, the unit counts, the BN moments and step 5"
        return text


def check(predicted, labels, min_samples, min_share):
    """The guard's verdict (an `OpenSetCheck`) and the boolean in-domain mask, from per-sample predicted classes.

    Parameters
    ----------
    predicted : array of int
        The class the model predicts for each observed sample.
    labels : sequence of str
        The model's class labels (metadata); catch-all classes are `OUT_OF_VOCABULARY_LABELS`.
    min_samples : int
        Fewer in-domain samples than this leave the model dense.
    min_share : float
        A smaller in-domain share leaves the model dense; < 0 turns the guard off (every sample counts).
    """
    predicted = np.asarray(predicted).reshape(-1)
    catch_all = out_of_vocabulary_classes(labels) if min_share >= 0 else ()
    mask = ~np.isin(predicted, catch_all)
    names = tuple(labels[i] for i in catch_all)
    in_domain = int(mask.sum())
    enough = in_domain >= min_samples and in_domain >= min_share * len(predicted)
    return OpenSetCheck(len(predicted), in_domain, names, bool(enough), min_share >= 0), mask


def in_domain_samples(x, mask):
    """The samples of `x` (an array, a list of samples, or a list of batches) where `mask` is True."""
    if isinstance(x, np.ndarray):
        return x[mask]
    if len(x) == len(mask):  # a list of single samples (the app's session): keep its form
        return [sample for sample, keep in zip(x, mask) if keep]
    return np.concatenate([np.asarray(batch) for batch in x])[mask]
