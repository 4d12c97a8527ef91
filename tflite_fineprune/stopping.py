"""Step 5's stopping rule: may the model be pruned to a rate, on the evidence of the user's unlabeled samples?

A pure function of what the model predicted on those samples before and after pruning, so that the Kotlin
port (`Stopping.kt`: `StoppingRule`) makes the same decision with the same arithmetic. Two measurements,
each turned into an upper confidence bound that widens as the samples get fewer:

* **Disagreements**: the pruned model's class differs from the unpruned model's on k of the n samples. The
  one-sided Clopper–Pearson upper bound on the true disagreement rate (at `confidence`) must stay
  ≤ `max_disagreement`. 0 of 15 bounds the rate only by 18 %, 0 of 200 by 1.5 %, 0 of 500 by 0.6 %: a user
  with few samples is not pruned on "no disagreement seen".
* **Distribution shift**: per sample the total variation distance between the two predicted distributions,
  ½ Σ |p − q| (softmax of logits first). Its mean plus `shift_deviations` standard errors must stay
  ≤ `max_shift`. It is evidence without a single disagreement: a prune that moves every prediction a little
  shows here long before a class flips, and a user with few samples pays the standard error.

A rate is accepted when both bounds hold and the agreement on the samples is ≥ `agreement` (the point
estimate, the rule before the bounds). With fewer than two classes in play (every other class excluded), any
model agrees with the unpruned one and every distribution is the same one-hot vector: nothing measured says
anything, and no rate is accepted.

The Clopper–Pearson bound is the p at which P(Binomial(n, p) ≤ k) = 1 − confidence, found by bisection on
`binomial_cdf` (a fixed number of halvings, the same in Kotlin).
"""

import dataclasses
import math

import numpy as np

BISECTION_STEPS = 60  # halvings of [k/n, 1]: below 1e-17, the resolution of a double near 1


def binomial_cdf(k, n, p):
    """P(Binomial(n, p) ≤ k), summed in log space (no SciPy at run time)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(int(k) + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def disagreement_upper_bound(k, n, confidence):
    """One-sided Clopper–Pearson upper bound on a rate after `k` events in `n` trials, at `confidence`."""
    if n <= 0 or k >= n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if middle <= 0.0 or middle >= 1.0:
            break
        if binomial_cdf(k, n, middle) > 1.0 - confidence:
            low = middle
        else:
            high = middle
    return high


def posteriors(outputs, output_kind):
    """Class probabilities (float64) of model outputs ([n, classes]): softmax of logits, probabilities as they are.

    Sums run class by class, in the order the Kotlin port adds them.
    """
    outputs = np.asarray(outputs, np.float64)
    if output_kind != "logits":
        return outputs
    exp = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return exp / _sum_columns(exp)[:, None]


def _sum_columns(values):
    total = values[:, 0].copy()
    for column in range(1, values.shape[1]):
        total += values[:, column]
    return total


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What one rate's pruned model did on the user's n samples, compared with the unpruned model."""

    rate: float
    samples: int
    disagreements: int
    shift_mean: float  # mean total variation distance between the predicted distributions
    shift_error: float  # its standard error (sample standard deviation / √n)

    @property
    def agreement(self):
        return 1.0 - self.disagreements / self.samples if self.samples else 0.0


def measure(rate, reference, pruned):
    """`Evidence` from the unpruned and pruned models' class probabilities on the same samples ([n, classes]).

    Sums run in sample order, as in the Kotlin port (no pairwise summation).
    """
    reference, pruned = np.asarray(reference, np.float64), np.asarray(pruned, np.float64)
    n = len(reference)
    disagreements = int(np.sum(np.argmax(pruned, -1) != np.argmax(reference, -1)))
    shift = [0.5 * float(v) for v in _sum_columns(np.abs(reference - pruned))] if n else []
    total = 0.0
    for value in shift:
        total += value
    mean = total / n if n else 0.0
    if n < 2:
        return Evidence(float(rate), n, disagreements, mean, 1.0)
    squares = 0.0
    for value in shift:
        squares += (value - mean) * (value - mean)
    return Evidence(float(rate), n, disagreements, mean, math.sqrt(squares / (n - 1)) / math.sqrt(n))


@dataclasses.dataclass(frozen=True)
class StoppingRule:
    """When a pruned rate is accepted (module docstring); `AutoRule`'s step-5 fields build one."""

    agreement: float = 0.99
    confidence: float = 0.95
    max_disagreement: float = 0.01
    max_shift: float = 0.03
    shift_deviations: float = 1.645

    def bounds(self, evidence):
        """(upper bound on the disagreement rate, upper bound on the mean distribution shift)."""
        return (disagreement_upper_bound(evidence.disagreements, evidence.samples, self.confidence),
                evidence.shift_mean + self.shift_deviations * evidence.shift_error)

    def accepts(self, evidence, classes_in_play):
        """Whether the pruned model at `evidence.rate` may be kept."""
        if classes_in_play < 2 or evidence.samples < 1:
            return False
        disagreement, shift = self.bounds(evidence)
        return (evidence.agreement >= self.agreement and disagreement <= self.max_disagreement
                and shift <= self.max_shift)

    def describe(self, evidence):
        disagreement, shift = self.bounds(evidence)
        return (f"{evidence.rate:.0%}: {evidence.disagreements}/{evidence.samples} disagree (≤ {disagreement:.1%}), "
                f"shift {evidence.shift_mean:.3f} (≤ {shift:.3f})")

    def limits(self):
        return (f"agreement ≥ {self.agreement:.0%}, disagreement ≤ {self.max_disagreement:.1%} and mean shift "
                f"≤ {self.max_shift:g} at {self.confidence:.0%} confidence")
