"""Who the users are: file lists read from disk on the driver, split per user into adaptation and evaluation.

A user is a `UserSpec`: names of files, never arrays, so that a cluster ships
only paths and each worker loads its users' files itself. Four kinds:

- `folders`: one folder per user, `DIR/<user>/<label>/<files>`;
- `speakers`: Speech Commands' layout, `DIR/<label>/<speaker>_nohash_<n>.wav` (the speaker from the file name);
- `class-subsets`: users generated from one labelled folder `DIR/<label>/<files>`, each meeting k classes;
- `manifest`: a CSV file with the columns `path,user,label` for anything else.

Each user's files are split into an adaptation half (observed without labels)
and an evaluation half (labels used only to score), in an order drawn from
`numpy.random.SeedSequence(seed, spawn_key=(index,))`: the same user gets the
same split whichever engine, worker or order evaluates it.
"""

import collections
import collections.abc
import csv
import dataclasses
import os
import re

import numpy as np

from ..datafiles import scan_folder, skipped_note
from ..errors import FinePruneError, InputError

KINDS = ("folders", "speakers", "class-subsets", "manifest")
# Speech Commands: `<speaker>_nohash_<n>.wav`, `_unknown_` clips `<word>_<speaker>_nohash_<n>.wav` (8 hex digits).
SPEAKER_PATTERN = r"(?:^|_)([0-9a-fA-F]{8})_nohash_"
MANIFEST_COLUMNS = ("path", "user", "label")


@dataclasses.dataclass(frozen=True)
class UserSpec:
    """One user's files: `adapt` observed without labels, `evaluate` scored with `labels` (class indices).

    `others` / `other_labels`: files of other users' evaluation halves, scored to show what the personalized
    model forgets (empty unless asked for). `seed`: the seed of a recipe's own randomness for this user (the
    `random` lever); None derives it from (seed, index).
    """

    index: int
    name: str
    adapt: tuple
    evaluate: tuple
    labels: tuple
    others: tuple = ()
    other_labels: tuple = ()
    seed: int = None


@dataclasses.dataclass(frozen=True)
class SampleUser:
    """One user whose samples are already arrays (a benchmark's synthesized or mixed users): `adapt_x` observed
    without labels, `eval_x` scored with `eval_y`; `others_x`/`others_y` other users' samples (None: not scored).

    Evaluated by the same `worker.evaluate_user` as a `UserSpec`, so a benchmark that makes its users in memory
    and a population read from disk share one harness. Meant for the local engine (a cluster would ship the
    arrays through the driver).
    """

    index: int
    name: str
    adapt_x: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    others_x: np.ndarray = None
    others_y: np.ndarray = None
    seed: int = None


def user_rng(seed, index, stream=0):
    """The user's own random generator: the same for (seed, index) on every machine and in every order."""
    key = (index,) if stream == 0 else (index, stream)  # stream 0, the split: SeedSequence(seed, spawn_key=(i,))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def split_files(items, rng):
    """`items` (path, label) in a random order from `rng`: the first half (rounded up) adapts, the rest scores."""
    order = rng.permutation(len(items))
    half = (len(items) + 1) // 2
    return [items[i] for i in order[:half]], [items[i] for i in order[half:]]


def make_users(named_items, seed=0, min_files=2, others=0):
    """`UserSpec`s from `(name, [(path, label), ...])` pairs in user-index order; users with fewer than
    `min_files` files are left out. Returns `(users, notes)`."""
    users, short = [], []
    for name, items in named_items:
        if len(items) < max(2, min_files):
            short.append(name)
            continue
        index = len(users)
        adapt, held_out = split_files(sorted(items), user_rng(seed, index))
        users.append(UserSpec(index, name, tuple(p for p, _ in adapt), tuple(p for p, _ in held_out),
                              tuple(int(y) for _, y in held_out)))
    notes = [f"left out {len(short)} users with fewer than {max(2, min_files)} files"] if short else []
    if not users:
        raise InputError(f"no user has {max(2, min_files)} or more files"
                         + (f" ({len(short)} users have fewer)" if short else ""))
    return add_others(users, seed, others), notes


def add_others(users, seed, count):
    """Give each user `count` files drawn (with replacement) from other users' evaluation halves."""
    if not count or len(users) < 2:
        return users
    return [with_others(user, len(users), users.__getitem__, seed, count) for user in users]


def with_others(user, total, user_at, seed, count):
    """`user` with `count` files of other users' evaluation halves (`user_at(index)` gives a user, any order)."""
    rng = user_rng(seed, user.index, stream=1)
    files, labels = [], []
    for _ in range(count):
        other = int(rng.integers(total - 1))
        other = user_at(other + (other >= user.index))
        if other.evaluate:
            pick = int(rng.integers(len(other.evaluate)))
            files.append(other.evaluate[pick])
            labels.append(other.labels[pick])
    return dataclasses.replace(user, others=tuple(files), other_labels=tuple(labels))


def label_index(name, labels, where):
    """A class folder's (or manifest cell's) class index: a model label or an integer in range."""
    if name in labels:
        return labels.index(name)
    if name.isdigit() and (not labels or int(name) < len(labels)):
        return int(name)
    raise InputError(f"{where}: label {name!r} is not one of the model's labels "
                     f"({', '.join(labels) or 'none embedded'}) nor a class index")


def _labelled_files(root, labels, notes):
    """[(path, class index)] of every data file under `root/<label>/`."""
    files, skipped = scan_folder(root)
    if skipped:
        notes.append(f"{root}: {skipped_note(skipped)}")
    items = []
    for path in files:
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) < 2:
            raise InputError(f"{path} is not inside a class folder; expected {root}/<label>/<file>")
        items.append((path, label_index(parts[0], labels, path)))
    return items


def folder_users(root, labels, seed=0, min_files=2, others=0):
    """One user per sub-folder of `root`, each `root/<user>/<label>/<files>`; `(users, notes)`."""
    root = _folder(root)
    notes = []
    names = sorted(n for n in os.listdir(root) if not n.startswith(".") and os.path.isdir(os.path.join(root, n)))
    if not names:
        raise InputError(f"{root} has no user folders; expected {root}/<user>/<label>/<files>")
    named = []
    for name in names:
        try:
            named.append((name, _labelled_files(os.path.join(root, name), labels, notes)))
        except FinePruneError as exc:
            if "holds no" not in str(exc):
                raise
            notes.append(f"user {name}: {exc}")
    users, more = make_users(named, seed, min_files, others)
    return users, notes + more


def speaker_users(root, labels, seed=0, min_files=2, others=0, pattern=SPEAKER_PATTERN):
    """One user per speaker of `root/<label>/<files>`, the speaker read from each file name by `pattern` (its
    first group); files without a speaker (`_silence_`) belong to nobody. `(users, notes)`."""
    root = _folder(root)
    notes = []
    regex = re.compile(pattern)
    by_speaker, nobody = collections.defaultdict(list), 0
    for path, label in _labelled_files(root, labels, notes):
        match = regex.search(os.path.splitext(os.path.basename(path))[0])
        if match is None:
            nobody += 1
            continue
        by_speaker[match.group(1) if regex.groups else match.group(0)].append((path, label))
    if nobody:
        notes.append(f"{nobody} files name no speaker (pattern {pattern!r}) and belong to no user")
    if not by_speaker:
        raise InputError(f"no file under {root} names a speaker (pattern {pattern!r})")
    users, more = make_users(sorted(by_speaker.items()), seed, min_files, others)
    return users, notes + more


def class_subset_users(root, labels, class_counts=(2, 3, 5), count=30, per_class=100, seed=0, others=0,
                       skip_first=0):
    """`count` users generated from the labelled folder `root/<label>/<files>`: user i meets
    k = `class_counts[i % len(class_counts)]` classes drawn at random, with `per_class` files of each (half of
    them to adapt). `skip_first`: the first files of each class in name order belong to nobody (for example the
    export's normalization reference pool). `(users, notes)`."""
    root = _folder(root)
    notes = []
    by_class = collections.defaultdict(list)
    for path, label in _labelled_files(root, labels, notes):
        by_class[label].append(path)
    classes = sorted(by_class)
    pools = [sorted(by_class[c])[skip_first:] for c in classes]
    if not class_counts or min(class_counts) < 1 or max(class_counts) > len(classes):
        raise FinePruneError(f"--class-subsets {','.join(map(str, class_counts))}: each must be 1 to the "
                             f"{len(classes)} classes found in {root}")
    small = [labels[c] if c < len(labels) else str(c) for c, pool in zip(classes, pools) if len(pool) < per_class]
    if small:
        raise InputError(f"classes {', '.join(small)} of {root} have fewer than {per_class} files "
                         f"(after skipping the first {skip_first}); lower --per-class")
    if per_class * min(class_counts) < 2:
        raise FinePruneError("each class-subset user needs 2 files or more (--per-class × the fewest classes)")
    return ClassSubsetUsers(pools, classes, list(labels), tuple(class_counts), count, per_class, seed, others), notes


class ClassSubsetUsers(collections.abc.Sequence):
    """The users of `class_subset_users`, each made from (seed, index) when asked for: the driver holds only the
    class folders' file lists, however many users there are."""

    def __init__(self, pools, classes, labels, class_counts, count, per_class, seed, others):
        self.pools, self.classes, self.labels = pools, classes, labels
        self.class_counts, self.count, self.per_class = class_counts, count, per_class
        self.seed, self.others = seed, others

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if not 0 <= index < self.count:
            raise IndexError(f"user {index} of {self.count}")
        user = self._make(index)
        if self.others and self.count > 1:
            user = with_others(user, self.count, self._make, self.seed, self.others)
        return user

    def _make(self, index):
        rng = user_rng(self.seed, index, stream=2)
        k = self.class_counts[index % len(self.class_counts)]
        chosen = sorted(int(c) for c in rng.choice(len(self.classes), size=k, replace=False))
        items = [(self.pools[c][int(i)], self.classes[c]) for c in chosen
                 for i in rng.choice(len(self.pools[c]), size=self.per_class, replace=False)]
        names = "+".join(self.labels[self.classes[c]] if self.classes[c] < len(self.labels) else str(self.classes[c])
                         for c in chosen)
        adapt, held_out = split_files(sorted(items), user_rng(self.seed, index))
        return UserSpec(index, f"u{index:0{len(str(self.count - 1))}d}-k{k}:{names}", tuple(p for p, _ in adapt),
                        tuple(p for p, _ in held_out), tuple(int(y) for _, y in held_out))


def manifest_users(manifest, labels, seed=0, min_files=2, others=0):
    """Users from a CSV manifest with the columns `path,user,label` (paths relative to the manifest's folder
    unless absolute), users in order of first appearance. `(users, notes)`."""
    manifest = os.fspath(manifest)
    base = os.path.dirname(os.path.abspath(manifest))
    by_user = {}
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise InputError(f"{manifest} has the columns {reader.fieldnames}; expected "
                                 f"{', '.join(MANIFEST_COLUMNS)} (missing {', '.join(missing)})")
            for line, row in enumerate(reader, start=2):
                if not row["path"] or not row["user"] or row["label"] in (None, ""):
                    raise InputError(f"{manifest}:{line}: every row needs a path, a user and a label")
                path = os.path.join(base, row["path"])
                by_user.setdefault(row["user"], []).append((path, label_index(row["label"], labels,
                                                                              f"{manifest}:{line}")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the manifest {manifest} ({exc})") from None
    if not by_user:
        raise InputError(f"{manifest} lists no files")
    return make_users(list(by_user.items()), seed, min_files, others)


def _folder(root):
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InputError(f"data folder {root!r} does not exist or is not a folder")
    return root
