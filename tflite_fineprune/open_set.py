"""The open-set guard of `personalize`: how much of the user's data looks like the model's world.

On a phone a user records whatever they say: words outside the model's
vocabulary, silence, noise. A model with catch-all classes (`_unknown_`,
`_silence_` in keyword spotting) files those samples there, and they are no
evidence about which of the model's *words* the user says: counted in the
class test they inflate n until zero counts of real words look significant
(/work/shared/findings/open-set.md: at 75 % other-language clips the test
kept only `_unknown_` and the speaker ended at 0 %). The guard

- calls a sample *in-domain* when the model does not file it in a catch-all
  class (the labels come from the model's metadata) and, in an export that
  has it, its typicality is ≤ 1: `collect`'s per-sample distance of the
  BatchNorm inputs from the export's reference pool, as a multiple of the
  pool's own 95th percentile (export/normalization.py, `typicality_limits`);
- runs the class test over the in-domain samples' predictions only (n = their
  count; the catch-all classes are never excluded), and step 5 on them;
- leaves atypical samples out of every step: the typical ones are observed
  again alone, so the dormant-unit counts and the BatchNorm moments come from
  them (a speaker's own `_unknown_` words still tell the voice and microphone);
- leaves the model dense, and says why, when fewer than `min_samples` of the
  samples, or less than `min_in_domain_share` of them, are in-domain.

A model without catch-all classes (CIFAR's ResNet-8) relies on typicality
alone; an export without normalization statistics (or from before issue 22)
has neither signal, and every sample counts as in-domain
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
    atypical: int = -1  # samples whose typicality is > 1 (-1: the export has no typicality output)
    catch_all_predicted: int = 0  # samples predicted in a catch-all class

    @property
    def share(self):
        return self.in_domain / self.samples if self.samples else 0.0

    @property
    def filtered(self):
        """Whether the class test counts a subset (some samples looked out-of-vocabulary)."""
        return self.in_domain < self.samples

    def __str__(self):
        if not self.enabled:
            return "not checked (the guard is off: min_in_domain_share < 0)"
        if not self.catch_all and self.atypical < 0:
            return "every sample counts (the model has no catch-all class and no typicality output)"
        reasons = ([f"{self.catch_all_predicted} predicted {'/'.join(self.catch_all)}"] if self.catch_all else []) + (
            [f"{self.atypical} atypical"] if self.atypical >= 0 else [])
        text = f"{self.in_domain} of {self.samples} samples in-domain ({self.share:.0%}); {', '.join(reasons)}"
        if not self.enough:
            return text + ": too few in-domain samples, the model stays dense"
        if self.atypical > 0:
            text += "; atypical ones left out of every step, catch-all ones of the class test and step 5"
        elif self.filtered:
            text += "; they are left out of the class test and step 5"
        return text


def check(predicted, labels, min_samples, min_share, typicality=None):
    """The guard's verdict (an `OpenSetCheck`) and two boolean masks: in-domain and typical.

    *In-domain* samples (typical and not predicted in a catch-all class) are the evidence about which of the
    model's classes the user meets: the class test counts them alone. *Typical* samples (all of them without a
    typicality output) are the evidence about the user's domain — voice, microphone, camera — even when the
    model files them under `_unknown_`: the unit counts, the BN moments come from them.

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
    typicality : array of float, optional
        Per sample, collect's `typicality` output (> 1: atypical); None when the export has none.
    """
    predicted = np.asarray(predicted).reshape(-1)
    enabled = min_share >= 0
    catch_all = out_of_vocabulary_classes(labels) if enabled else ()
    words = ~np.isin(predicted, catch_all)
    typical = np.ones(len(predicted), bool)
    if typicality is not None and enabled:
        typical = np.asarray(typicality, np.float64).reshape(-1) <= 1.0
    mask = words & typical
    names = tuple(labels[i] for i in catch_all)
    in_domain = int(mask.sum())
    enough = in_domain >= min_samples and in_domain >= min_share * len(predicted)
    atypical = int(np.sum(~typical)) if typicality is not None and enabled else -1
    verdict = OpenSetCheck(len(predicted), in_domain, names, bool(enough), enabled, atypical, int(np.sum(~words)))
    return verdict, mask, typical


def in_domain_samples(x, mask):
    """The samples of `x` (an array, a list of samples, a list of batches, or a re-iterable of batches such as
    a streamed `--data` folder) where `mask` is True; a re-iterable stays one, filtered batch by batch."""
    if isinstance(x, np.ndarray):
        return x[mask]
    if not isinstance(x, (list, tuple)):
        return _FilteredBatches(x, np.asarray(mask, bool))
    if len(x) == len(mask):  # a list of single samples (the app's session): keep its form
        return [sample for sample, keep in zip(x, mask) if keep]
    return np.concatenate([np.asarray(batch) for batch in x])[mask]


class _FilteredBatches:
    """The batches of a re-iterable, each without the samples `mask` leaves out (the data is never held whole)."""

    def __init__(self, batches, mask):
        self.batches, self.mask = batches, mask

    def __iter__(self):
        start = 0
        for batch in self.batches:
            batch = np.asarray(batch)
            keep = self.mask[start:start + len(batch)]
            start += len(batch)
            if keep.any():
                yield batch[keep]
