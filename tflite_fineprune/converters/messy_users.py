"""Populations of messy users: adaptation data that is partly not the model's world.

On a phone a user records whatever they say and keeps whatever photos they
have. These builders take a clean population (`tflite_fineprune.converters.evaluation.User`s)
and mix out-of-vocabulary samples into each user's *adaptation* set only, so
that they make up a given share of it; the evaluation set stays the user's
real classes. What gets mixed in:

- speech: Speech Commands' auxiliary words (bed, bird, cat, …, which the
  12-class model maps to `_unknown_`) spoken by *other* speakers, the Free
  Spoken Digit Dataset's digits resampled to 16 kHz (another corpus, another
  microphone), and the test split's `_silence_` / background-noise clips;
- images: Fashion-MNIST upscaled to 32×32 RGB (another dataset) or uniform
  noise.

`benchmarks/open_set.py` evaluates them with `tflite_fineprune.converters.evaluation`.
"""

import dataclasses
import pathlib

import numpy as np

from ..errors import FinePruneError, InputError

from .evaluation import speech_commands_speaker

SILENCE = "_silence_"
UNKNOWN = "_unknown_"


def mix_users(users, pool, share, seed=0, name=""):
    """Each user with out-of-vocabulary samples from `pool` added until they are `share` of the adaptation set.

    Parameters
    ----------
    users : list of `User`
        The clean population; their evaluation sets are kept as they are.
    pool : np.ndarray or callable
        Out-of-vocabulary samples (same shape as the users' inputs), or a function
        `pool(user) -> np.ndarray` giving the samples allowed for that user (e.g. other speakers' words).
    share : float
        Fraction of each mixed adaptation set that comes from the pool, in [0, 1).
    seed : int
        Seeds the draw (without replacement; one generator for the whole population).
    name : str
        Appended to each user's name.

    Returns
    -------
    list of `User`
        The mixed users, adaptation samples in a shuffled order.
    """
    if not 0 <= share < 1:
        raise FinePruneError(f"the out-of-vocabulary share must be in [0, 1), got {share}")
    rng = np.random.default_rng(seed)
    mixed = []
    for user in users:
        candidates = pool(user) if callable(pool) else pool
        extra = int(round(len(user.adapt_x) * share / (1 - share)))
        if extra > len(candidates):
            raise InputError(f"user {user.name} needs {extra} out-of-vocabulary samples; the pool has "
                             f"{len(candidates)}")
        drawn = candidates[rng.choice(len(candidates), size=extra, replace=False)]
        adapt = np.concatenate([user.adapt_x, drawn.astype(user.adapt_x.dtype)])
        order = rng.permutation(len(adapt))
        adapt_y = None if user.adapt_y is None else np.concatenate([user.adapt_y, np.full(extra, -1)])[order]
        mixed.append(dataclasses.replace(user, name=user.name + name, adapt_x=adapt[order], adapt_y=adapt_y))
    return mixed


def unknown_words_by_speaker(root, load_clip):
    """Speech Commands' auxiliary words: (clips, speaker ids) of every `_unknown_/<word>_<speaker>…wav`."""
    files = sorted(pathlib.Path(root, UNKNOWN).glob("*.wav"))
    if not files:
        raise InputError(f"no {UNKNOWN} clips under {root}")
    return np.stack([load_clip(f) for f in files]), np.array([speech_commands_speaker(f.name) for f in files])


def other_speakers(clips, speakers):
    """A `mix_users` pool: for each user (a speaker), the clips of every other speaker."""
    return lambda user: clips[speakers != user.name.split(":")[0]]


def silence_clips(root, load_clip):
    """The test split's `_silence_` clips (background noise cut into one-second pieces)."""
    files = sorted(pathlib.Path(root, SILENCE).glob("*.wav"))
    if not files:
        raise InputError(f"no {SILENCE} clips under {root}")
    return np.stack([load_clip(f) for f in files])


def fsdd_digits(root, load_clip, limit=600, seed=0):
    """Up to `limit` Free Spoken Digit Dataset clips (8 kHz, resampled by `load_clip` to the model's rate)."""
    files = sorted(pathlib.Path(root).glob("*.wav"))
    if not files:
        raise InputError(f"no FSDD recordings (*.wav) under {root}")
    pick = np.random.default_rng(seed).permutation(len(files))[:limit]
    return np.stack([load_clip(files[i]) for i in sorted(pick)])


def fashion_as_cifar(images):
    """Fashion-MNIST uint8 28×28 → 32×32 RGB uint8 (bilinear), the ResNet-8's input format."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR).convert("RGB"))
                     for im in np.asarray(images, np.uint8)])


def noise_images(count, shape=(32, 32, 3), seed=0):
    """Uniform random uint8 pixels: photos of nothing."""
    return np.random.default_rng(seed).integers(0, 256, size=(count,) + tuple(shape), dtype=np.uint8)
