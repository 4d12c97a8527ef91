"""One download of `data fetch`: bounded in size and time, written through a descriptor opened without following links,
verified before anything reads it.

The size is enforced while the bytes arrive (a pinned size exactly, else `Download.max_size`): a longer or endless
body stops there and its partial file is removed. A watchdog thread cuts the connection when the transfer falls
below `Limits.min_rate` bytes/s averaged over `Limits.rate_window` s, or runs past `Limits.deadline` s in all, so a
server that sends one byte every few seconds (or headers that never end) fails in bounded time; the partial file is
kept for the next run to resume.
"""

import collections
import dataclasses
import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request

from .errors import FinePruneError
from .fetch_guard import open_kept, open_part, remove_foreign

CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Limits:
    """How slow a download may be: `read_timeout` s for one network read, at least `min_rate` bytes/s averaged over
    any `rate_window` s, and `deadline` s in all for one file."""

    read_timeout: float = 30
    min_rate: float = 1024
    rate_window: float = 60
    deadline: float = 3600


class _Watchdog:
    """Cuts the connection (shutdown of its sockets) when the transfer is too slow or too long; `reason` says why."""

    def __init__(self, limits):
        self.limits, self.received, self.reason, self._sockets = limits, 0, None, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def register(self, sock):
        """Watch `sock` through a duplicate of its descriptor: it outlives a TLS wrap (which detaches the original
        object before the handshake) and a close, and shutting it down ends the connection for every reader."""
        self._sockets.append(socket.socket(fileno=os.dup(sock.fileno())))
        if self.reason:
            self._cut()
        return sock

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for sock in self._sockets:
            sock.close()

    def _watch(self):
        limits = self.limits
        start = time.monotonic()
        samples = collections.deque([(start, 0)])
        tick = max(0.01, min(1.0, limits.rate_window / 4, limits.deadline / 4))
        while not self._stop.wait(tick):
            now, received = time.monotonic(), self.received
            samples.append((now, received))
            while len(samples) > 1 and samples[1][0] <= now - limits.rate_window:
                samples.popleft()
            since, base = samples[0]
            if now - start >= limits.deadline:
                self.reason = f"it took longer than the deadline of {limits.deadline:g} s"
            elif now - since >= limits.rate_window and received - base < limits.min_rate * (now - since):
                rate = (received - base) / (now - since)
                self.reason = (f"it slowed to {rate:,.1f} bytes/s over {now - since:.0f} s "
                               f"(the floor is {limits.min_rate:,.0f} bytes/s)")
            if self.reason:
                self._cut()
                return

    def _cut(self):
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _tracked(connection_class, watchdog):
    class Tracked(connection_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            create = self._create_connection  # http.client's hook for the TCP connection (proxy tunnel, TLS after)
            self._create_connection = lambda *a, **k: watchdog.register(create(*a, **k))
    return Tracked


class _Tracking:
    watchdog = None

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_tracked(http_class, self.watchdog), req, **kwargs)


class _HTTPHandler(_Tracking, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_Tracking, urllib.request.HTTPSHandler):
    pass


def _opener(watchdog):
    handlers = [_HTTPHandler(), _HTTPSHandler()]
    for handler in handlers:
        handler.watchdog = watchdog
    return urllib.request.build_opener(*handlers)


def fd_sha256(fd):
    digest, offset = hashlib.sha256(), 0
    while block := os.pread(fd, 1 << 20, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def looks_like_html(fd):
    return _html_bytes(os.pread(fd, 1024, 0))


def _html_bytes(head):
    head = head.lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head


def _html_error(url, download, detail):
    return FinePruneError(f"the server returned an HTML page, not {download.name} ({detail}), from {url}: a captive "
                          "portal or a login page? Nothing was kept or laid out; check the network or use --mirror URL")


def fetch_file(url, folder, download, limits, log):
    """The path of `download`, verified, under `folder` (a private folder): kept from an earlier run if its digest
    still matches, else downloaded (resuming the `.part` an interrupted run left) and checked."""
    base = folder / download.name.replace("/", "__")
    done, part = base, base.with_name(base.name + ".part")
    if remove_foreign(done, log):
        fd = open_kept(done)
        if fd is not None:
            try:
                if download.sha256 is None or fd_sha256(fd) == download.sha256:
                    log(f"  {download.name}: verified by an earlier run, kept")
                    return done
            finally:
                os.close(fd)
            os.unlink(done)
    fd = open_part(part, log)
    try:
        _transfer(url, fd, download, limits, log, part)
        _verify(url, fd, download, part)
    except BaseException:
        if os.fstat(fd).st_size == 0:  # nothing worth resuming
            part.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    os.replace(part, done)
    return done


def _verify(url, fd, download, part):
    size = os.fstat(fd).st_size
    if download.size is not None and size < download.size:
        raise FinePruneError(f"the download of {url} stopped at {size:,} of {download.size:,} bytes; the partial file "
                             "is kept: run again to resume")
    if download.sha256 is None:
        if looks_like_html(fd):
            os.unlink(part)
            raise _html_error(url, download, f"{size:,} bytes")
        return
    digest = fd_sha256(fd)
    if digest != download.sha256:
        os.unlink(part)
        if looks_like_html(fd):
            raise _html_error(url, download, f"{size:,} bytes")
        raise FinePruneError(f"{url} has SHA-256 {digest} ({size:,} bytes); expected {download.sha256}"
                             + (f" ({download.size:,} bytes)" if download.size else "")
                             + "; the file was deleted and nothing was laid out")


def _transfer(url, fd, download, limits, log, part):
    """Fill `fd` with the file at `url` from where it stops; one restart from zero if the server cannot resume."""
    have = os.fstat(fd).st_size
    cap = download.size if download.size is not None else download.max_size
    if cap is not None and have > cap or download.size is None and have:
        have = _restart(fd)  # unpinned files are not resumed: their bytes may differ between requests
    if download.size is not None and have == download.size:
        return  # complete before the interruption; the digest decides
    for attempt in range(2):
        try:
            _get(url, fd, have, download, cap, limits, log, part)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have and attempt == 0:
                log(f"  {download.name}: the server cannot resume at byte {have:,} (HTTP 416); starting over")
                have = _restart(fd)
                continue
            raise FinePruneError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None


def _restart(fd):
    os.ftruncate(fd, 0)
    return 0


def _get(url, fd, have, download, cap, limits, log, part):
    request = urllib.request.Request(url, headers={"User-Agent": "tflite-fineprune", "Accept-Encoding": "identity"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with _Watchdog(limits) as watchdog:
        try:
            with _opener(watchdog).open(request, timeout=limits.read_timeout) as response:
                if have and response.status != 206:
                    log(f"  {download.name}: the server ignored the range request; starting over")
                    have = _restart(fd)
                total = _check_headers(url, response, have, download, cap, part)
                with _Progress(download.name, have, total or download.size, log) as progress:
                    _copy(response, fd, have, cap, watchdog, url, download, part, progress)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if watchdog.reason:
                raise FinePruneError(f"the download of {url} was stopped: {watchdog.reason}; the partial file is "
                                     "kept: run again to resume (--min-rate and --deadline set the bounds)") from None
            raise _network_error(url, exc, part) from None
        if watchdog.reason:
            raise FinePruneError(f"the download of {url} was stopped: {watchdog.reason}; the partial file is kept: "
                                 "run again to resume (--min-rate and --deadline set the bounds)")


def _check_headers(url, response, have, download, cap, part):
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.strip().isdigit() else None
    total = have + length if length is not None else None
    if have and response.status == 206:
        start = response.headers.get("Content-Range", "").partition(" ")[2].partition("-")[0]
        if start != str(have):
            os.unlink(part)
            raise FinePruneError(f"{url} answered the request for bytes from {have:,} with "
                                 f"{response.headers.get('Content-Range')!r}; the partial file was removed: run again")
    html = (response.headers.get_content_type() == "text/html" and not download.name.endswith((".html", ".htm")))
    if html and (download.size is None or total != download.size):
        os.unlink(part)
        raise _html_error(url, download, f"Content-Type text/html, {length if length is not None else '?'} bytes")
    if total is not None and (download.size is not None and total != download.size or cap is not None and total > cap):
        os.unlink(part)
        if length <= 1 << 20 and _html_bytes(response.read(min(length, 1024))):  # a page served without its type
            raise _html_error(url, download, f"{length:,} bytes")
        expected = f"{download.size:,} bytes" if download.size is not None else f"at most {cap:,} bytes"
        raise FinePruneError(f"{url} declares {total:,} bytes; expected {expected}; nothing was kept")
    return total


class _Progress:
    """A progress bar on a terminal (tqdm, when installed), else a line every 5 s."""

    def __init__(self, name, have, total, log):
        self.name, self.received, self.total, self.log, self.bar = name, have, total, log, None
        self.last = time.monotonic()
        try:
            import sys

            from tqdm.auto import tqdm
            if sys.stderr.isatty():
                self.bar = tqdm(desc=name, total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024)
        except ImportError:
            pass

    def __enter__(self):
        return self

    def update(self, count):
        self.received += count
        if self.bar is not None:
            self.bar.update(count)
        elif time.monotonic() - self.last > 5:
            self.log(f"  {self.name}: {self.received / 1e6:,.1f}"
                     + (f" of {self.total / 1e6:,.1f}" if self.total else "") + " MB")
            self.last = time.monotonic()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _copy(response, fd, have, cap, watchdog, url, download, part, progress):
    os.lseek(fd, have, os.SEEK_SET)
    received = have
    while block := response.read1(CHUNK):
        received += len(block)
        if cap is not None and received > cap:
            os.unlink(part)
            raise FinePruneError(f"{url} sent more than the {cap:,} bytes expected of {download.name}; stopped there "
                                 "and removed the partial file")
        _write_all(fd, block, part)
        watchdog.received += len(block)
        progress.update(len(block))
    try:
        os.fsync(fd)
    except OSError as exc:
        raise FinePruneError(f"cannot write {part}: {exc.strerror}") from None


def _write_all(fd, block, part):
    view = memoryview(block)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise FinePruneError(f"cannot write {part}: {exc.strerror}; the partial file is kept: free space and run "
                             "again to resume") from None


class NetworkError(FinePruneError):
    """The network failed (not the file, not the disk): the caller adds where else to fetch from."""


def _network_error(url, exc, part):
    reason = getattr(exc, "reason", None) or exc
    text = getattr(reason, "strerror", None) or reason
    kept = " (the partial file is kept; run again to resume)" if part.exists() and part.stat().st_size else ""
    return NetworkError(f"cannot download {url}: {text}{kept}")

