"""One user's evaluation, wherever it runs: load the user's files, score dense, apply each recipe, score again.

The same function runs in the local engine and inside every Ray actor, so
the two give the same rows. A user whose files cannot be read, or whose
recipe raises, becomes rows with an `error` (one per recipe) and never stops
the run.
"""

import atexit
import dataclasses
import os
import shutil
import tempfile

import numpy as np

from ..datafiles import load_samples, resolve_hook
from ..errors import FinePruneError
from .users import SampleUser

# users.csv: the columns the issue fixes, in its order, then what a reader needs to group and explain rows.
COLUMNS = ("user", "recipe", "adapt", "eval", "dense_accuracy", "accuracy", "unit_sparsity", "weight_sparsity",
           "mac_sparsity", "error", "index", "chosen")
OTHERS_COLUMNS = ("dense_others", "others")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How every worker runs the model: interpreter, batch size and threads (one: workers are processes)."""

    backend: str = "auto"
    batch_size: int = 32
    threads: int = 1
    preprocess: str = None
    seed: int = 0
    strict: bool = False  # raise a user's error instead of writing a failed row (benchmarks: a bug must stop them)


def open_model(model_path, settings):
    from ..runtime import Personalizer

    return Personalizer(model_path, backend=settings.backend, batch_size=settings.batch_size,
                        num_threads=settings.threads)


class ModelCache:
    """The worker's one personalizer, rebuilt only when a different model (by SHA-256) arrives."""

    def __init__(self):
        self.digest = None
        self.personalizer = None
        self.folder = None

    def get(self, digest, model_bytes, settings):
        """The personalizer for the model `digest`; `model_bytes()` is called only on a new model."""
        if digest != self.digest:
            if self.folder is None:
                self.folder = tempfile.mkdtemp(prefix="fineprune-population-")
                atexit.register(shutil.rmtree, self.folder, True)
            path = os.path.join(self.folder, f"{digest}.tflite")
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(model_bytes())
            self.personalizer = open_model(path, settings)
            self.digest = digest
        return self.personalizer


def load_files(paths, personalizer, hook):
    """The samples of `paths` stacked (one file may hold several samples) and each file's sample count."""
    meta = personalizer.metadata
    arrays = [load_samples(os.fspath(p), meta.input_shape[1:], hook, meta.input_dtype, meta.sample_rate)
              for p in paths]
    return np.concatenate(arrays, axis=0), [len(a) for a in arrays]


def _labels(counts, labels):
    return np.repeat(np.asarray(labels, np.int64), counts)


def _accuracy(personalizer, x, y):
    return float(np.mean(np.argmax(personalizer.predict(x), axis=-1) == y))


def user_seed(seed, index):
    """An integer seed for a recipe's own randomness (the `random` lever), derived from (seed, user index)."""
    return int(np.random.SeedSequence(seed, spawn_key=(index, 3)).generate_state(1)[0])


def evaluate_user(personalizer, user, recipes, settings):
    """Rows (dicts with `COLUMNS`) for one `UserSpec` (or `SampleUser`) and every recipe; errors become rows, never
    exceptions (`settings.strict` raises them instead)."""
    base = {"user": user.name, "adapt": "", "eval": "", "dense_accuracy": "", "index": user.index}
    others = user.others_x is not None if isinstance(user, SampleUser) else bool(user.others)
    try:
        adapt_x, eval_x, eval_y, others_x, others_y = _samples(user, personalizer, settings)
        personalizer.reset()
        base.update(adapt=len(adapt_x), eval=len(eval_y), dense_accuracy=_accuracy(personalizer, eval_x, eval_y))
        if others:
            base["dense_others"] = _accuracy(personalizer, others_x, others_y)
    except Exception as exc:  # noqa: BLE001 -- a user's broken file must not stop a population's run
        if settings.strict:
            raise
        return [_failed(base, recipe, exc, others) for recipe in recipes]
    rows = []
    for recipe in recipes:
        try:
            seed = user_seed(settings.seed, user.index) if user.seed is None else user.seed
            chosen = recipe.apply(personalizer, adapt_x, seed)
            sparsity = personalizer.sparsity()
            row = {**base, "recipe": recipe.name, "accuracy": _accuracy(personalizer, eval_x, eval_y),
                   "unit_sparsity": float(sparsity.units), "weight_sparsity": float(sparsity.weights),
                   "mac_sparsity": float(sparsity.macs), "error": "", "chosen": chosen or ""}
            if others:
                row["others"] = _accuracy(personalizer, others_x, others_y)
            rows.append(row)
        except Exception as exc:  # noqa: BLE001 -- a recipe (possibly a plug-in) failing on one user
            if settings.strict:
                raise
            rows.append(_failed(base, recipe, exc, others))
    personalizer.reset()
    return rows


def _samples(user, personalizer, settings):
    """`(adapt_x, eval_x, eval_y, others_x, others_y)` of a `SampleUser` as given, of a `UserSpec` read from disk."""
    if isinstance(user, SampleUser):
        return user.adapt_x, user.eval_x, np.asarray(user.eval_y), user.others_x, user.others_y
    hook = resolve_hook(settings.preprocess)
    adapt_x, _ = load_files(user.adapt, personalizer, hook)
    eval_x, counts = load_files(user.evaluate, personalizer, hook)
    others_x = others_y = None
    if user.others:
        others_x, other_counts = load_files(user.others, personalizer, hook)
        others_y = _labels(other_counts, user.other_labels)
    return adapt_x, eval_x, _labels(counts, user.labels), others_x, others_y


def _failed(base, recipe, exc, others):
    message = str(exc) if isinstance(exc, FinePruneError) else f"{type(exc).__name__}: {exc}"
    row = {**base, "recipe": recipe.name, "accuracy": "", "unit_sparsity": "", "weight_sparsity": "",
           "mac_sparsity": "", "error": " ".join(message.split()) or type(exc).__name__, "chosen": ""}
    if others:
        row.setdefault("dense_others", "")
        row["others"] = ""
    return row


def evaluate_batch(personalizer, users, recipes, settings):
    """`[(index, rows)]` for a batch of users, in the order given."""
    return [(user.index, evaluate_user(personalizer, user, recipes, settings)) for user in users]
