"""Bounded unpacking of the archives `data fetch` downloads: tar, zip and CIFAR-10's pickled numpy arrays.

Every archive gets an `ExtractLimits`: what it may unpack to in all (bytes and members, and at most `ratio` times
its own size, so a small bomb is refused from its headers before anything is decompressed); the bytes actually
written are counted too. A corrupt, encrypted or oddly compressed archive, and a pickle that claims more than it
holds or builds anything but plain numeric arrays, is one `FinePruneError`, never a traceback or a MemoryError.
"""

import contextlib
import dataclasses
import functools
import gzip
import io
import lzma
import os
import pathlib
import pickle
import pickletools
import tarfile
import zipfile
import zlib

from .errors import FinePruneError

ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
               zipfile.ZIP_LZMA: "lzma"}


@dataclasses.dataclass(frozen=True)
class ExtractLimits:
    """At most `total` bytes and `members` entries, and at most `ratio` times the archive's own size."""

    total: int
    members: int
    ratio: float = 20


class _Budget:
    def __init__(self, archive, limits):
        self.archive, self.limits = archive, limits
        self.bound = min(limits.total, int(limits.ratio * max(os.path.getsize(archive), 1)))
        self.members = self.bytes = 0

    def add(self, name, size):
        self.members += 1
        self.bytes += size
        if self.members > self.limits.members:
            raise FinePruneError(f"{self.archive} holds more than {self.limits.members:,} members; expected the "
                                 "published archive (a bomb?), nothing was laid out")
        if self.bytes > self.bound:
            raise FinePruneError(f"{self.archive} would unpack to more than {self.bound:,} bytes (at {name!r}; the "
                                 f"bound is {self.limits.total:,} bytes and {self.limits.ratio:g} times the archive's "
                                 "size): a zip or tar bomb? nothing was laid out")


@contextlib.contextmanager
def archive_errors(archive):
    """A corrupt archive is one line naming it (tar, gzip, zip and pickle errors derive from many bases)."""
    try:
        yield
    except FinePruneError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, gzip.BadGzipFile, lzma.LZMAError, EOFError,
            pickle.UnpicklingError, NotImplementedError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())  # tarfile's messages span lines
        raise FinePruneError(f"{archive} is not a valid archive of the expected kind: {type(exc).__name__}: "
                             f"{detail}; nothing was laid out") from None


def safe_name(name, source):
    """Refuse archive member names that would land outside the extraction folder."""
    parts = pathlib.PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or "\0" in name:
        raise FinePruneError(f"{source} holds {name!r}, a path outside its folder; refusing to extract it")


def _copy(source, destination, declared, archive, name):
    written = 0
    with open(destination, "xb") as out:
        while block := source.read(1 << 20):
            written += len(block)
            if written > declared:
                raise FinePruneError(f"{archive}: {name!r} unpacks to more than the {declared:,} bytes it declares; "
                                     "nothing was laid out")
            out.write(block)


def untar(archive, destination, limits, keep=lambda member: True):
    """Extract the regular files and folders of the tar `archive` that `keep` accepts into `destination`."""
    budget = _Budget(archive, limits)
    with archive_errors(archive), tarfile.open(archive, "r:*") as tar:
        for member in tar:  # headers are read one by one: the budget refuses before a member is decompressed
            budget.add(member.name, member.size if member.isfile() else 0)
            if not keep(member) or not (member.isfile() or member.isdir()):
                continue
            safe_name(member.name, archive)
            target = destination / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source:
                _copy(source, target, member.size, archive, member.name)


def tar_members(archive, names, limits):
    """{name: bytes} of the regular files `names` in the tar `archive`, read within `limits`."""
    budget, found = _Budget(archive, limits), {}
    with archive_errors(archive), tarfile.open(archive, "r:*") as tar:
        for member in tar:
            budget.add(member.name, member.size if member.isfile() else 0)
            if member.name in names and member.isfile():
                with tar.extractfile(member) as source:
                    found[member.name] = source.read(member.size)
    return found


def unzip(archive, targets, limits):
    """Extract the members of the zip `archive` that `targets(name)` maps to a path (None: skipped)."""
    budget = _Budget(archive, limits)
    with archive_errors(archive), zipfile.ZipFile(archive) as z:
        chosen = []
        for info in z.infolist():
            target = targets(info.filename)
            budget.add(info.filename, info.file_size if target is not None else 0)
            if target is None:
                continue
            safe_name(info.filename, archive)
            if info.flag_bits & 0x1:
                raise FinePruneError(f"{archive}: {info.filename!r} is encrypted; expected the published archive, "
                                     "nothing was laid out")
            if info.compress_type not in ZIP_METHODS:
                raise FinePruneError(f"{archive}: {info.filename!r} uses compression method {info.compress_type}; "
                                     f"expected one of {', '.join(ZIP_METHODS.values())}, nothing was laid out")
            chosen.append((info, target))
        for info, target in chosen:
            with z.open(info) as source:
                _copy(source, target, info.file_size, archive, info.filename)
    return len(chosen)


class _Allocations:
    """What the constructors a pickle calls may allocate in all: a pickle can call one many times on one memoized
    argument (a few bytes each), so each call is charged for what it makes."""

    def __init__(self, limit, source):
        self.limit, self.left, self.source = limit, limit, source

    def spend(self, size):
        self.left -= size
        if self.left < 0:
            raise FinePruneError(f"{self.source} builds more than {self.limit:,} bytes of data from a pickle of about "
                                 "half that; expected each array's bytes once")


class _ArrayUnpickler(pickle.Unpickler):
    """Reads pickled dicts of numpy arrays and nothing else: only these constructors, an array starts empty, and
    what they build is charged against the pickle's own size."""

    RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
    ALLOWED = RECONSTRUCT | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # bytes in protocol 2

    def __init__(self, data, source):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.source, self.allocations = source, _Allocations(2 * len(data) + 4096, source)

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise FinePruneError(f"{self.source} asks to construct {module}.{name}; expected numpy arrays only")
        found = super().find_class(module, name)
        if (module, name) in self.RECONSTRUCT:
            return functools.partial(_empty_array, found, self.source, self.allocations)
        if name == "encode":
            return functools.partial(_latin1, self.source, self.allocations)
        return found


def _latin1(source, allocations, text, encoding="utf-8", errors="strict"):
    """Protocol 2 pickles bytes as `_codecs.encode(text, 'latin1')`; nothing else is needed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise FinePruneError(f"{source} asks to encode {type(text).__name__} as {encoding!r}; expected latin1 text")
    allocations.spend(len(text))
    return text.encode("latin1")


@functools.lru_cache(maxsize=None)
def _charged_array():
    import numpy as np

    class ChargedArray(np.ndarray):
        """An ndarray whose pickled state is charged for its raw bytes before numpy copies them."""

        def __setstate__(self, state):
            raw = state[-1] if isinstance(state, tuple) and state else None
            if not isinstance(raw, bytes):
                raise FinePruneError(f"{self.source} fills an array from {type(raw).__name__}; expected raw bytes")
            self.allocations.spend(len(raw))
            super().__setstate__(state)

    return ChargedArray


def _empty_array(reconstruct, source, allocations, subtype, shape, dtype):
    """numpy pickles an array as an empty one (shape (0,)) whose data comes after; a bigger start allocates memory
    the pickle never paid for."""
    import numpy as np

    if subtype is not np.ndarray or not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape) \
            or functools.reduce(lambda a, b: a * b, shape, 1) != 0:
        raise FinePruneError(f"{source} starts an array as {getattr(subtype, '__name__', subtype)} of shape "
                             f"{shape!r}; expected an empty numpy array filled by its data")
    array = reconstruct(_charged_array(), shape, dtype)
    array.source, array.allocations = source, allocations
    return array


def load_arrays(data, source):
    """Unpickle `data` (bytes): every length it claims is checked against the bytes it holds first, and only plain
    numeric arrays whose shape matches their data are accepted."""
    try:
        for _ in pickletools.genops(io.BytesIO(data)):  # reads each counted field, refusing one that runs past the end
            pass
    except ValueError as exc:
        raise FinePruneError(f"{source} is not a valid pickle ({exc}); nothing was laid out") from None
    with archive_errors(source):
        try:
            value = _ArrayUnpickler(data, source).load()
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            raise FinePruneError(f"{source} holds an invalid array ({type(exc).__name__}: {exc}); "
                                 "nothing was laid out") from None
    _check_arrays(value, len(data), source)
    return value


def _check_arrays(value, budget, source):
    import numpy as np

    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "biuf" or item.dtype.itemsize == 0 or item.nbytes > budget:
                raise FinePruneError(f"{source} holds an array of shape {item.shape} and type {item.dtype} "
                                     f"({item.nbytes:,} bytes from a {budget:,}-byte pickle); expected plain numbers "
                                     "with their data")
        elif isinstance(item, (dict, list, tuple)) and item is not value:
            _check_arrays(item, budget, source)

