"""Per-user evaluation: does personalizing a model on a user's unlabeled data help that user?

A *user* has an adaptation set (observed without labels) and a disjoint
evaluation set (never observed). A *recipe* says how to personalize (how much
to prune, whether to prune classes). For each user and recipe we report the
dense and personalized accuracy on the user's evaluation set, the same on
other users' data (what the personalized model forgets), and the sparsity.
"""

import collections
import csv
import dataclasses
import io
import os
import re

import numpy as np

from ..errors import InputError
from ..population.recipes import random_masks
from ..progress import progress_bar
from ..safe_io import atomic_write

SPEAKER_PATTERN = re.compile(r"([0-9a-f]{8})_nohash_")


@dataclasses.dataclass
class User:
    name: str
    adapt_x: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    adapt_y: np.ndarray = None  # adaptation labels: only label-based references (benchmarks/) read them


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way to personalize a user's copy of the model.

    Prune `sparsity` of each hidden layer's units (the model's in-graph
    policy), in `steps` rounds of observe-prune-recollect; then mask classes
    predicted on fewer than `min_class_fraction` of the adaptation samples.
    `random=True` prunes the same number of units per layer at random (a
    control); `protect` names layers left dense. With `rule` (a
    `auto_recipe.AutoRule`) the label-free automatic choice runs instead.
    """

    name: str
    sparsity: float = 0.0
    min_class_fraction: float = None
    steps: int = 1
    random: bool = False
    protect: tuple = ()
    rule: object = None  # an AutoRule: run `Personalizer.personalize` with it instead of the fields above

    def apply(self, personalizer, adapt_x, seed=0):
        if self.rule is not None:
            personalizer.personalize(adapt_x, self.rule, progress=False)
            return
        personalizer.reset()
        if self.sparsity and self.random:
            personalizer.observe(adapt_x, progress=False)
            random_masks(personalizer, self.sparsity, seed)
        elif self.sparsity:
            for step in range(1, self.steps + 1):
                personalizer.reset(counts=True, masks=False)
                personalizer.observe(adapt_x, progress=False)
                personalizer.prune(self.sparsity * step / self.steps)
        else:
            personalizer.observe(adapt_x, progress=False)
        if self.protect:
            _unprune(personalizer, self.protect)
        if self.min_class_fraction is not None:
            if self.steps > 1 or self.protect:
                personalizer.reset(counts=True, masks=False)
                personalizer.observe(adapt_x, progress=False)
            personalizer.prune_outputs(self.min_class_fraction)


def _unprune(personalizer, layers):
    state = personalizer.get_state()
    masks = state.masks.copy()
    for group in personalizer.groups:
        if group.name in layers:
            masks[group.offset:group.offset + group.units] = 1.0
    personalizer.set_state(dataclasses.replace(state, masks=masks))


def speech_commands_speaker(path):
    """Speech Commands speaker id: the 8 hex characters before `_nohash_`, or None (`_silence_`)."""
    match = SPEAKER_PATTERN.search(os.path.basename(path))
    return match.group(1) if match else None


def split_adapt_eval(items, seed):
    """Fixed-seed split of a user's items into an adaptation half and an evaluation half."""
    order = np.random.default_rng(seed).permutation(len(items))
    half = (len(items) + 1) // 2
    return [items[i] for i in order[:half]], [items[i] for i in order[half:]]


def speaker_users(root, labels, load_clip, min_clips=30, seed=0):
    """Every Speech Commands speaker with at least `min_clips` clips, as a `User`.

    `root` is the test split folder (`<label>/<file>.wav`); `load_clip(path)`
    returns one model input.
    """
    by_speaker = collections.defaultdict(list)
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if not os.path.isdir(folder) or label not in labels:
            continue
        for name in sorted(os.listdir(folder)):
            speaker = speech_commands_speaker(name)
            if name.endswith(".wav") and speaker is not None:
                by_speaker[speaker].append((os.path.join(folder, name), labels.index(label)))
    users = []
    for speaker in sorted(by_speaker):
        items = by_speaker[speaker]
        if len(items) < min_clips:
            continue
        adapt, held_out = split_adapt_eval(items, seed + int(speaker, 16) % 1000)
        users.append(User(speaker,
                          np.stack([load_clip(p) for p, _ in adapt]),
                          np.stack([load_clip(p) for p, _ in held_out]),
                          np.array([y for _, y in held_out]),
                          np.array([y for _, y in adapt])))
    if not users:
        raise InputError(f"no speaker in {root} has {min_clips} or more clips")
    return users


def others_sets(users, per_user, seed=0):
    """Per user, (x, y) of up to `per_user` other users' evaluation items, drawn at random with `seed`."""
    rng = np.random.default_rng(seed)
    others = []
    for i in range(len(users)):
        pool = [(j, k) for j, u in enumerate(users) if j != i for k in range(len(u.eval_y))]
        pick = rng.choice(len(pool), size=min(per_user, len(pool)), replace=False)
        chosen = [pool[p] for p in pick]
        others.append((np.stack([users[j].eval_x[k] for j, k in chosen]),
                       np.array([users[j].eval_y[k] for j, k in chosen])))
    return others


def evaluate_users(personalizer, users, recipes, others_per_user=200, seed=0, progress=True):
    """Rows (dicts) of per-user results for each recipe; see module docstring.

    Each user is evaluated by the population engine's `worker.evaluate_user` (the local engine's loop over
    `SampleUser`s), so the benchmarks' in-memory users and `tflite-fineprune population` share one harness.
    A user's error is raised, not written as a row. `others_per_user=0` leaves out what the personalized model
    forgets (no `dense_others` / `others` columns).
    """
    from tflite_fineprune.population.users import SampleUser
    from tflite_fineprune.population.worker import Settings, evaluate_user

    others = others_sets(users, others_per_user, seed) if others_per_user else None
    # seed + i: each user's random control, as this harness always drew it
    samples = [SampleUser(i, user.name, user.adapt_x, user.eval_x, user.eval_y,
                          *(others[i] if others else (None, None)), seed=seed + i) for i, user in enumerate(users)]
    settings = Settings(seed=seed, strict=True)
    keys = ("user", "recipe", "adapt", "eval", "dense_accuracy", "accuracy") + (
        ("dense_others", "others") if others else ()) + ("unit_sparsity", "weight_sparsity", "mac_sparsity")
    rows = []
    for user in progress_bar(samples, "users", "user", progress):
        rows.extend({key: row[key] for key in keys} for row in evaluate_user(personalizer, user, recipes, settings))
    return rows


def summarize(rows):
    """Per recipe: means, std, worst-decile users, forgetting and sparsity."""
    out = []
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        part = [r for r in rows if r["recipe"] == recipe]
        dense = np.array([r["dense_accuracy"] for r in part])
        acc = np.array([r["accuracy"] for r in part])
        worst = max(1, int(round(0.1 * len(part))))
        out.append({
            "recipe": recipe, "users": len(part),
            "dense_mean": dense.mean(), "mean": acc.mean(), "std": acc.std(),
            "dense_worst_decile": np.sort(dense)[:worst].mean(), "worst_decile": np.sort(acc)[:worst].mean(),
            "helped": int(np.sum(acc > dense)), "hurt": int(np.sum(acc < dense)),
            "dense_others": np.mean([r["dense_others"] for r in part]),
            "others": np.mean([r["others"] for r in part]),
            "unit_sparsity": np.mean([r["unit_sparsity"] for r in part]),
            "weight_sparsity": np.mean([r["weight_sparsity"] for r in part]),
            "mac_sparsity": np.mean([r["mac_sparsity"] for r in part]),
        })
    return out


def format_summary(summary):
    width = max([28] + [len(s["recipe"]) for s in summary])
    header = (f"{'recipe':<{width}} {'users':>5} {'dense':>6} {'pers.':>6} {'std':>5} {'worst10%':>14} "
              f"{'+/-':>7} {'others':>13} {'units':>6} {'weights':>7} {'MACs':>6}")
    lines = [header, "-" * len(header)]
    for s in summary:
        lines.append(
            f"{s['recipe']:<{width}} {s['users']:>5} {s['dense_mean']:>6.3f} {s['mean']:>6.3f} {s['std']:>5.3f} "
            f"{s['dense_worst_decile']:>6.3f}→{s['worst_decile']:<6.3f} {s['helped']:>3}/{s['hurt']:<3} "
            f"{s['dense_others']:>5.3f}→{s['others']:<6.3f} {s['unit_sparsity']:>6.1%} {s['weight_sparsity']:>7.1%} "
            f"{s['mac_sparsity']:>6.1%}")
    return "\n".join(lines)


def write_csv(rows, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode("utf-8"))


def plot_users(rows, path, title):
    """Dense vs personalized accuracy per user, one panel per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    fig, axes = plt.subplots(1, len(recipes), figsize=(4 * len(recipes), 4), squeeze=False)
    for ax, recipe in zip(axes[0], recipes):
        part = [r for r in rows if r["recipe"] == recipe]
        dense = [r["dense_accuracy"] for r in part]
        acc = [r["accuracy"] for r in part]
        ax.scatter(dense, acc, s=12, alpha=0.7)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title(recipe, fontsize=9)
        ax.set_xlabel("dense accuracy")
    axes[0][0].set_ylabel("personalized accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_subset_users(images_by_class, class_counts=(2, 3, 5), users_per_count=10, adapt_per_class=50,
                       eval_per_class=50, seed=0):
    """Users who only meet k classes: disjoint adaptation and evaluation images of those classes.

    `images_by_class` is a list (one entry per class index) of arrays of images.
    """
    rng = np.random.default_rng(seed)
    users = []
    for k in class_counts:
        for n in range(users_per_count):
            classes = sorted(rng.choice(len(images_by_class), size=k, replace=False))
            adapt, adapt_y, held_x, held_y = [], [], [], []
            for c in classes:
                order = rng.permutation(len(images_by_class[c]))
                if len(order) < adapt_per_class + eval_per_class:
                    raise InputError(f"class {c} has {len(order)} images; need {adapt_per_class + eval_per_class}")
                adapt.append(images_by_class[c][order[:adapt_per_class]])
                adapt_y.append(np.full(adapt_per_class, c))
                held_x.append(images_by_class[c][order[adapt_per_class:adapt_per_class + eval_per_class]])
                held_y.append(np.full(eval_per_class, c))
            users.append(User(f"k{k}-{n:02d}:" + "+".join(map(str, classes)), np.concatenate(adapt),
                              np.concatenate(held_x), np.concatenate(held_y), np.concatenate(adapt_y)))
    return users
