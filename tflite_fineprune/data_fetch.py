"""`tflite-fineprune data fetch`: download the demo data, verify it, lay it out atomically.

For each dataset of `data_sources.DATASETS` not already under the data folder: download its files into the private
folder `DATA/.downloads/<dataset>/` (fetch_transfer.py: size and time bounded, a `.part` file resumes with an HTTP
Range request), refuse any whose SHA-256 differs, lay them out in a staging folder inside DATA (archive_guard.py:
bounded unpacking), check the laid-out content where the table gives its digest, then rename the result into
place. One run per data folder at a time (fetch_guard.py: a lock); a folder that other users can write is refused.
A failure or an interrupt leaves no half-written folder and keeps every download that passed its check; a staging
folder left by a killed run is removed by the next one.
"""

import os
import pathlib
import shutil
import tempfile

from .data_sources import DATASETS, tree_sha256
from .errors import FinePruneError
from .fetch_guard import FolderLock, check_data_folder, make_folders, private_folder, remove_stale_staging
from .fetch_transfer import Limits, NetworkError, fetch_file

DOWNLOADS = ".downloads"
FETCH_COMMAND = "tflite-fineprune data fetch"


def select(only=None, datasets=None):
    datasets = DATASETS if datasets is None else datasets
    if not only:
        return list(datasets)
    known = {d.name: d for d in datasets}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise FinePruneError(f"unknown dataset {', '.join(unknown)}; expected one of {', '.join(known)}")
    return [known[name] for name in dict.fromkeys(only)]


def fetch(root, only=None, mirror=None, datasets=None, log=None, limits=None):
    """Fetch the datasets named in `only` (default: all) into `root`; returns the names fetched now.

    `mirror`: a base URL serving the files under their `Download.name` instead of the upstream URLs;
    `datasets`: the table (default: `data_sources.DATASETS`); `limits`: a `fetch_transfer.Limits` (how slow a
    download may be).
    """
    if os.name != "posix":
        raise FinePruneError("data fetch needs Linux or macOS (it relies on O_NOFOLLOW, flock and folder modes); "
                             "elsewhere fetch the files `data fetch --list` names by hand and pass --data DIR")
    log = log or (lambda text: print(text, flush=True))
    limits = limits or Limits()
    chosen = select(only, datasets)
    root = pathlib.Path(root)
    _check_writable(root)
    check_data_folder(root)
    with FolderLock(root, log):
        remove_stale_staging(root, log)
        return [dataset.name for dataset in chosen if _fetch_one(dataset, root, mirror, limits, log)]


def _fetch_one(dataset, root, mirror, limits, log):
    if all((root / p).exists() for p in dataset.provides):
        log(f"{dataset.name}: already in {root}")
        _remove_leftover(root / DOWNLOADS, dataset.name)
        return False
    present = [p for p in dataset.provides if (root / p).exists()]
    if present:
        raise FinePruneError(f"{dataset.name}: {', '.join(present)} already exist(s) under {root} but not "
                             f"the rest of {', '.join(dataset.provides)}; move it away and fetch again")
    log(f"{dataset.name}: {dataset.description}")
    folder = private_folder(private_folder(root / DOWNLOADS) / dataset.name)
    try:
        paths = _download_all(dataset, folder, mirror, limits, log)
        _lay_out(dataset, paths, root)
        shutil.rmtree(folder)  # kept until now: a failure or an interrupt above loses no verified download
    finally:
        _remove_if_empty(folder)
        _remove_if_empty(folder.parent)
    log(f"{dataset.name}: ready in {root / dataset.provides[0]}")
    return True


def _download_all(dataset, folder, mirror, limits, log):
    paths = {}
    for download in dataset.downloads:
        try:
            paths[download.name] = fetch_file(_url(download, mirror), folder, download, limits, log)
        except NetworkError as exc:
            hint = "is the mirror reachable?" if mirror else "offline? --mirror URL fetches the same files elsewhere"
            raise FinePruneError(f"{exc}; {hint}") from None
    return paths


def _remove_leftover(downloads, name):
    """The downloads of a dataset laid out by a run killed before it removed them (never through a link)."""
    leftover = downloads / name
    if not downloads.is_symlink() and leftover.is_dir() and not leftover.is_symlink():
        shutil.rmtree(leftover, ignore_errors=True)
        _remove_if_empty(downloads)


def _check_writable(root):
    try:
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".fetch-probe-")
        probe.close()
    except OSError as exc:
        raise FinePruneError(f"cannot write the data folder {root}: {exc.strerror or exc}; "
                             "choose another with -o DIR") from None


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


def _url(download, mirror):
    return mirror.rstrip("/") + "/" + download.name if mirror else download.url


def _lay_out(dataset, paths, root):
    staging = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".fetch-{dataset.name}-"))
    try:
        _unpack(dataset, paths, staging)
        for relative in dataset.provides:
            target = root / relative
            make_folders(root, pathlib.PurePath(relative).parent)
            if os.path.lexists(target):
                raise FinePruneError(f"{target} appeared while data fetch laid it out; move it away and fetch again")
            os.rename(staging / relative, target)
    except OSError as exc:  # a full disk, say: the downloads stay for the next run
        raise FinePruneError(f"{dataset.name}: cannot lay out the download: {exc}; the verified downloads are "
                             "kept for the next run") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(dataset, paths, staging):
    """The layout into `staging`; downloads whose content it refuses are deleted (fetching them again is the cure
    for a bad unpinned archive, and nothing else helps a pinned one)."""
    try:
        dataset.layout(paths, staging)
        if dataset.content_sha256 is not None:
            digest = tree_sha256(staging / dataset.provides[0])
            if digest != dataset.content_sha256:
                raise FinePruneError(f"{dataset.name}: the files laid out have content SHA-256 {digest}; expected "
                                     f"{dataset.content_sha256}; the download was deleted and nothing was laid out")
    except (FinePruneError, ValueError, EOFError) as exc:
        for path in paths.values():
            path.unlink(missing_ok=True)
        if isinstance(exc, FinePruneError):
            raise
        raise FinePruneError(f"{dataset.name}: cannot lay out the download: {exc}; it was deleted") from None


def add_parser(commands):
    """`data fetch` under the CLI's sub-commands; returns the command function."""
    data = commands.add_parser("data", help="get the demo data the demos, converters and tests use")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION",
                                  help="fetch (the only action)")
    p = actions.add_parser("fetch", help="download, verify (SHA-256) and lay out the public demo data")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="the data folder (default: $FINEPRUNE_DATA, else the per-user data folder)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="fetch only this dataset (repeatable): " + ", ".join(d.name for d in DATASETS))
    p.add_argument("--mirror", metavar="URL", help="a base URL that serves the files under their table names")
    p.add_argument("--list", action="store_true", help="list the datasets, their sources and sizes, and exit")
    p.add_argument("--min-rate", type=float, default=Limits.min_rate, metavar="BYTES_PER_S",
                   help=f"stop a download slower than this, averaged over {Limits.rate_window:g} s "
                        "(default: %(default)g; the partial file is kept for the next run)")
    p.add_argument("--deadline", type=float, default=Limits.deadline, metavar="SECONDS",
                   help="stop a download of one file that takes longer (default: %(default)g)")
    return cmd_data


def cmd_data(args):
    from .demo_data import default_data_root

    if args.list:
        for dataset in DATASETS:
            sizes = [d.size for d in dataset.downloads]
            size = f"{sum(sizes) / 1e6:>7.1f} MB" if None not in sizes else f"{'?':>7} MB"
            print(f"{dataset.name:<16} {size}  {dataset.description}")
            for download in dataset.downloads:
                print(f"{'':<16} {download.url}")
        return
    root = pathlib.Path(args.output) if args.output else default_data_root()
    if not args.deadline > 0 or not args.min_rate >= 0:
        raise FinePruneError(f"--deadline {args.deadline:g} --min-rate {args.min_rate:g}: expected a deadline above 0 "
                             "seconds and a rate of 0 bytes/s or more")
    limits = Limits(min_rate=args.min_rate, deadline=args.deadline)
    fetched = fetch(root, args.only, args.mirror, limits=limits)
    print(f"demo data in {root}" + (f" (fetched now: {', '.join(fetched)})" if fetched else ""))
