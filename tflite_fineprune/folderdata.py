"""A data folder read as batches: what is in memory is bounded by a batch (and a small cache), not by the folder.

`FolderData` is an iterable of batches that `Personalizer.observe`, `predict`
and `personalize` consume one at a time. The first pass decodes the files in
order (`datafiles.load_samples`), skips those that cannot be read or do not
fit the model and says so in one line; when the decoded batches stay under
`CACHE_BYTES` they are kept, so that the automatic recipe's later passes cost
nothing, else every later pass decodes the same files again.
"""

import collections
import os

import numpy as np

from .datafiles import (UnreadableFile, label_index, load_samples, resampled_note, resolve_hook, scan_folder,
                        skipped_note)
from .errors import InputError
from .progress import progress_bar

# Decoded batches up to this many bytes are kept after the first pass (a few hundred photos or one-second clips);
# a larger folder is decoded again on each later pass rather than held (100,000 clips would take GBs).
CACHE_BYTES = 64 << 20
# How many unreadable files the note and the error name (the rest are counted).
NAMED_FILES = 3


class FolderData:
    """The data files under `root`, decoded into the model's input in batches of `batch_size` samples.

    Iterating gives input batches; `labeled()` gives `(x, y, files)` with class indices from each file's
    folder (`labels` given). After the first complete pass: `samples` (how many), `files` (those that gave
    samples) and `skipped` (`(path, reason)` of those that did not). `notes(line)` receives the one-line notes
    (files of other kinds, unreadable files, resampled audio). A folder where no file can be read is a
    `FinePruneError` naming the first few and why.
    """

    def __init__(self, root, sample_shape, preprocess=None, labels=None, dtype="float32", sample_rate=0,
                 batch_size=32, notes=None, progress=False, cache_bytes=CACHE_BYTES):
        self.root = os.fspath(root)
        self.candidates, other_kinds = scan_folder(self.root)
        self._notes = notes or (lambda line: None)
        if other_kinds:
            self._notes(skipped_note(other_kinds))
        self._decode = dict(sample_shape=tuple(sample_shape), preprocess=resolve_hook(preprocess), dtype=dtype,
                            sample_rate=sample_rate)
        self._labels = labels
        self._batch_size = int(batch_size)
        self._progress = progress
        self._cache_bytes = cache_bytes
        self._cache = None
        self._sizes = None  # file → samples, after the first complete pass
        self.samples, self.files, self.skipped = None, [], []
        self.current_files = []

    def __iter__(self):
        for x, _, files in self.labeled():
            self.current_files = files  # which files the batch being consumed came from (for errors)
            yield x

    def labeled(self):
        """Batches `(x, y, files)`: `y` the class indices (None without `labels`), `files` those in the batch."""
        if self._sizes is None:
            return self._first_pass()
        if self._cache is not None:
            return iter(self._cache)
        return _rebatch(self._again(), self._batch_size)

    def _load(self, path, rates=None):
        samples = load_samples(path, resampled=rates, **self._decode)
        y = None
        if self._labels is not None:
            y = np.full(len(samples), label_index(path, self.root, self._labels), np.int64)
        return samples, y, path

    def _first_pass(self):
        rates, skipped, sizes = collections.Counter(), [], {}
        cache, cached = [], 0

        def pieces():
            for path in progress_bar(self.candidates, "load", "file", enabled=self._progress):
                try:
                    piece = self._load(path, rates)
                except UnreadableFile as exc:
                    skipped.append((path, str(exc)))
                    continue
                sizes[path] = len(piece[0])
                yield piece

        for batch in _rebatch(pieces(), self._batch_size):
            if cache is not None:
                cached += batch[0].nbytes
                if cached <= self._cache_bytes:
                    cache.append(batch)
                else:
                    cache = None
            yield batch
        if not sizes:
            raise InputError(f"no file of data folder {self.root!r} could be read: {_named(skipped)}")
        self._sizes, self._cache = sizes, cache
        self.samples, self.files, self.skipped = sum(sizes.values()), list(sizes), skipped
        if skipped:
            self._notes(f"skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''} that could not be read "
                        f"or do not fit the model: {_named(skipped)}")
        if rates:
            self._notes(resampled_note(rates, self._decode["sample_rate"]))

    def _again(self):
        """A later pass: the same files, which must give the same samples as the first time."""
        for path in progress_bar(self.files, "read", "file", enabled=self._progress):
            try:
                piece = self._load(path)
            except UnreadableFile as exc:
                raise InputError(f"{exc}; it was read before in this run: was it changed?") from None
            if len(piece[0]) != self._sizes[path]:
                raise InputError(f"{path} gave {len(piece[0])} samples, {self._sizes[path]} earlier in this run: "
                                 "was it changed?")
            yield piece


def _named(skipped):
    """The first few `(path, reason)` reasons (each names its file), and how many more."""
    shown = "; ".join(reason for _, reason in skipped[:NAMED_FILES])
    more = len(skipped) - NAMED_FILES
    return shown + (f"; and {more} more" if more > 0 else "")


def _rebatch(pieces, size):
    """`(x, y, path)` pieces (one per file, any number of samples) → batches `(x, y, files)` of `size` samples
    (the last one smaller). Each batch is its own array: a cached batch keeps nothing else alive."""
    xs, ys, files, count = [], [], [], 0
    for x, y, path in pieces:
        xs.append(x)
        ys.append(y)
        files.append(path)
        count += len(x)
        while count >= size:
            x_all = np.concatenate(xs) if len(xs) > 1 else xs[0]
            y_all = None if ys[0] is None else (np.concatenate(ys) if len(ys) > 1 else ys[0])
            yield (np.array(x_all[:size]), None if y_all is None else np.array(y_all[:size]), files)
            count -= size
            xs = [x_all[size:]] if count else []
            ys = [None if y_all is None else y_all[size:]] if count else []
            files = [files[-1]] if count else []
    if count:
        yield (np.concatenate(xs), None if ys[0] is None else np.concatenate(ys), files)


def load_folder(root, sample_shape, preprocess=None, labels=None, dtype="float32", sample_rate=0, progress=False,
                notes=None):
    """Every readable data file under `root` as one array: `(x, y, files)`.

    `y` holds class indices from each file's parent folder name (matched
    against `labels`, or read as an integer) when `labels` is not None, else
    None. For folders too large to hold, iterate a `FolderData` instead.
    """
    data = FolderData(root, sample_shape, preprocess, labels, dtype, sample_rate, batch_size=1024, notes=notes,
                      progress=progress, cache_bytes=0)
    batches = list(data.labeled())
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches]) if labels is not None else None
    return x, y, data.files
