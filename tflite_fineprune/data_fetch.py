"""`tflite-fineprune data fetch`: download the reference data, verify it, lay it out atomically.

For each dataset of `data_sources.DATASETS` not already under the data folder: download its files into
`DATA/.downloads/` (a `.part` file resumes with an HTTP Range request after an interruption), refuse any whose
SHA-256 differs (the file is deleted), lay them out in a staging folder inside DATA, check the laid-out content
where the table gives its digest, then rename the result into place. A failure leaves no half-written folder:
only a `.part` file that the next run resumes.
"""

import os
import pathlib
import shutil
import errno
import http.client
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .data_sources import DATASETS, file_sha256, tree_sha256
from .errors import FinePruneError

DOWNLOADS = ".downloads"
TIMEOUT_S = 30
_CHUNK = 1 << 16
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


def fetch(root, only=None, mirror=None, datasets=None, log=None):
    """Fetch the datasets named in `only` (default: all) into `root`; returns the names fetched now.

    `mirror`: a base URL serving the files under their `Download.name` instead of the upstream URLs;
    `datasets`: the table (default: `data_sources.DATASETS`).
    """
    log = log or (lambda text: print(text, flush=True))
    chosen = select(only, datasets)
    root = pathlib.Path(root)
    _check_writable(root)
    fetched = []
    for dataset in chosen:
        if all((root / p).exists() for p in dataset.provides):
            log(f"{dataset.name}: already in {root}")
            continue
        present = [p for p in dataset.provides if (root / p).exists()]
        if present:
            raise FinePruneError(f"{dataset.name}: {', '.join(present)} already exist(s) under {root} but not "
                                 f"the rest of {', '.join(dataset.provides)}; move it away and fetch again")
        log(f"{dataset.name}: {dataset.description}")
        folder = root / DOWNLOADS / dataset.name
        try:
            paths = {d.name: _download(d, folder, mirror, log) for d in dataset.downloads}
            _lay_out(dataset, paths, root)
        finally:
            _clean_downloads(folder)  # keeps only partial files, which the next run resumes
        log(f"{dataset.name}: ready in {root / dataset.provides[0]}")
        fetched.append(dataset.name)
    return fetched


def _check_writable(root):
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".fetch-probe-")
        probe.close()
    except OSError as exc:
        raise FinePruneError(f"cannot write the data folder {root}: {exc.strerror or exc}; "
                             "choose another with -o DIR") from None


def _clean_downloads(folder):
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix != ".part":
                path.unlink()
    _remove_if_empty(folder)
    _remove_if_empty(folder.parent)


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


def _url(download, mirror):
    return mirror.rstrip("/") + "/" + download.name if mirror else download.url


def _download(download, folder, mirror, log):
    """The verified file of `download` under `folder`, resuming a `.part` left by an interrupted run."""
    url = _url(download, mirror)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (download.name.replace("/", "__") + ".part")
    have = part.stat().st_size if part.exists() else 0
    expected = download.size
    request = urllib.request.Request(url, headers={"User-Agent": "tflite-fineprune"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            resumed = have and response.status == 206
            if have and not resumed:
                have = 0  # the server ignored the Range request: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else download.size
            expected = total
            with open(part, "ab" if resumed else "wb") as out:
                _copy_with_progress(response, out, have, total, download.name, log)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the .part already holds the whole file
            raise FinePruneError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, socket.timeout, http.client.HTTPException) as exc:
        if _local_write_error(exc):
            raise FinePruneError(f"cannot write {part}: {exc.strerror}") from None
        reason = getattr(exc, "reason", None) or exc
        kept = " (the partial file is kept; run again to resume)" if part.exists() and part.stat().st_size else ""
        hint = "is the mirror reachable?" if mirror else "offline? --mirror URL fetches the same files from elsewhere"
        raise FinePruneError(f"cannot download {url}: {getattr(reason, 'strerror', None) or reason}{kept}; "
                             + hint) from None
    size = part.stat().st_size
    if expected is not None and size < expected:
        raise FinePruneError(f"the download of {url} stopped at {size:,} of {expected:,} bytes; "
                             "run again to resume")
    if download.sha256 is not None:
        digest = file_sha256(part)
        if digest != download.sha256:
            part.unlink()
            raise FinePruneError(f"{url} has SHA-256 {digest} ({size:,} bytes); expected {download.sha256}"
                                 + (f" ({download.size:,} bytes)" if download.size else "")
                                 + "; the file was deleted and nothing was laid out")
    done = folder / download.name.replace("/", "__")
    os.replace(part, done)
    return done


def _local_write_error(exc):
    """A full disk or a read-only folder, as opposed to the network failing."""
    network = (urllib.error.URLError, ConnectionError, socket.timeout)
    return isinstance(exc, OSError) and not isinstance(exc, network) and exc.errno in (
        errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _copy_with_progress(response, out, have, total, name, log):
    bar = _progress(name, have, total)
    received, last_report = have, time.monotonic()
    while block := response.read(_CHUNK):
        out.write(block)
        received += len(block)
        if bar is not None:
            bar.update(len(block))
        elif time.monotonic() - last_report > 5:
            log(f"  {name}: {received / 1e6:,.1f}" + (f" of {total / 1e6:,.1f}" if total else "") + " MB")
            last_report = time.monotonic()
    if bar is not None:
        bar.close()
    out.flush()
    os.fsync(out.fileno())


def _progress(name, have, total):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc=name, total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024)


def _lay_out(dataset, paths, root):
    staging = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".fetch-{dataset.name}-"))
    try:
        dataset.layout(paths, staging)
        if dataset.content_sha256 is not None:
            digest = tree_sha256(staging / dataset.provides[0])
            if digest != dataset.content_sha256:
                raise FinePruneError(f"{dataset.name}: the files laid out have content SHA-256 {digest}; expected "
                                     f"{dataset.content_sha256}; the download was deleted and nothing was laid out")
        for relative in dataset.provides:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / relative, root / relative)
    except FinePruneError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # a corrupt archive: tarfile/zipfile/pickle errors derive from these
        raise FinePruneError(f"{dataset.name}: cannot lay out the download: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def add_parser(commands):
    """`data fetch` under the CLI's sub-commands; returns the command function."""
    data = commands.add_parser("data", help="get the reference data the demos, converters and tests use")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION",
                                  help="fetch (the only action)")
    p = actions.add_parser("fetch", help="download, verify (SHA-256) and lay out the public reference data")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="the data folder (default: $FINEPRUNE_DATA, else the per-user data folder)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="fetch only this dataset (repeatable): " + ", ".join(d.name for d in DATASETS))
    p.add_argument("--mirror", metavar="URL", help="a base URL that serves the files under their table names")
    p.add_argument("--list", action="store_true", help="list the datasets, their sources and sizes, and exit")
    return cmd_data


def cmd_data(args):
    from .reference_data import default_data_root

    if args.list:
        for dataset in DATASETS:
            sizes = [d.size for d in dataset.downloads]
            size = f"{sum(sizes) / 1e6:>7.1f} MB" if None not in sizes else f"{'?':>7} MB"
            print(f"{dataset.name:<16} {size}  {dataset.description}")
            for download in dataset.downloads:
                print(f"{'':<16} {download.url}")
        return
    root = pathlib.Path(args.output) if args.output else default_data_root()
    fetched = fetch(root, args.only, args.mirror)
    print(f"reference data in {root}" + (f" (fetched now: {', '.join(fetched)})" if fetched else ""))
