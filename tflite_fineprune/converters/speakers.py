"""Speaker ids from audio file names, and a validation split that keeps speakers apart.

A model that has heard a speaker in training scores that speaker far better than a
stranger, so validating on clips of the training speakers overstates how well the
model generalizes (and early stopping then picks an over-fitted epoch). When file
names carry speaker ids, the validation speakers are disjoint from the training
ones; without ids the split falls back to random clips, and says so.
"""

import dataclasses
import re

import numpy as np

from ..errors import FinePruneError, InputError

# Searched in the file name without its extension:
#   Speech Commands  <speaker>_nohash_<n>       (8 hex digits; `_unknown_` clips: <word>_<speaker>_nohash_<n>)
#   FSDD             <digit>_<speaker>_<n>       (e.g. 3_theo_17)
DEFAULT_SPEAKER_PATTERN = r"(?:^|_)([0-9a-fA-F]{8})_nohash_|^\d+_([A-Za-z]+)_\d+$"


def speaker_regex(pattern=None):
    try:
        return re.compile(pattern or DEFAULT_SPEAKER_PATTERN)
    except re.error as exc:
        raise FinePruneError(f"--speaker-pattern {pattern!r} is not a valid regular expression: {exc}") from None


def speaker_of(stem, regex):
    """The speaker id in a file stem: group `speaker`, else the first group that matched, else the match; or None."""
    match = regex.search(stem)
    if match is None:
        return None
    if "speaker" in regex.groupindex and match.group("speaker") is not None:
        return match.group("speaker")
    return next((group for group in match.groups() if group is not None), match.group(0))


@dataclasses.dataclass
class Split:
    """Indices into the clip list: training, validation, held out (never trained on)."""

    train: np.ndarray
    validation: np.ndarray
    held_out: np.ndarray
    validation_speakers: tuple
    held_out_speakers: tuple
    description: str


def split_clips(speakers, validation_fraction=0.2, held_out=(), seed=0):
    """Split clips (one speaker id or None each) into training/validation/held-out indices.

    With at least two speakers among the clips that are not held out, whole speakers
    go to validation (shuffled by `seed`) until they hold `validation_fraction` of those
    clips; clips without a speaker id stay in training. Otherwise the split is random.
    """
    if not 0 < validation_fraction < 1:
        raise FinePruneError(f"the validation fraction must lie strictly between 0 and 1, got {validation_fraction}")
    speakers = np.array([s if s is not None else "" for s in speakers], dtype=object)
    known = sorted(set(speakers) - {""})
    missing = sorted(set(held_out) - set(known))
    if missing:
        raise InputError(f"held-out speaker(s) {', '.join(missing)} not found; speakers in the data: "
                         f"{', '.join(known[:20]) or 'none (no file name matched the speaker pattern)'}"
                         f"{' ...' if len(known) > 20 else ''}")
    is_held_out = np.isin(speakers, list(held_out)) if held_out else np.zeros(len(speakers), bool)
    pool = np.flatnonzero(~is_held_out)
    rng = np.random.default_rng(seed)
    candidates = sorted(set(speakers[pool]) - {""})
    if len(candidates) >= 2:
        order = rng.permutation(candidates)
        counts = {s: int(np.sum(speakers[pool] == s)) for s in candidates}
        target = validation_fraction * sum(counts.values())
        chosen, total = [], 0
        for speaker in order[:-1]:  # at least one speaker stays in training
            if total >= target:
                break
            chosen.append(speaker)
            total += counts[speaker]
        in_validation = np.isin(speakers[pool], chosen)
        description = (f"speaker-disjoint validation: {len(chosen)} of {len(candidates)} speakers "
                       f"({total} clips); {int(np.sum(speakers[pool] == ''))} clips without a speaker id stay "
                       "in training")
        chosen = tuple(sorted(chosen))
    else:
        in_validation = np.zeros(len(pool), bool)
        in_validation[rng.permutation(len(pool))[:max(1, round(validation_fraction * len(pool)))]] = True
        description = (f"random validation split ({int(in_validation.sum())} clips): found {len(candidates)} "
                       "speaker id(s) in the file names, need 2 (see --speaker-pattern)")
        chosen = ()
    if in_validation.all():
        raise InputError(f"too few clips to split off validation data: {len(pool)} clips")
    return Split(pool[~in_validation], pool[in_validation], np.flatnonzero(is_held_out), chosen,
                 tuple(sorted(held_out)), description)
