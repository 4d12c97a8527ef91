"""Files written whole or not at all, and read with a cap: what the state files, exports, metadata, the CLI and the
converters share.

`atomic_write` replaces a file through a temporary one renamed over it (a crash leaves the old or the new content);
`read_file` refuses folders, pipes and devices before opening them and files past a size cap before reading them;
`starts_with` and `check_output_folder` let a command refuse a wrong output before any work.
"""

import os
import secrets
import stat

from .errors import FinePruneError

# Temporary files are named after their target and the writing process, so a later save can tell
# its own leftovers (a writer killed mid-save) from a concurrent writer's file in progress.
_TMP_SUFFIX = ".fineprune.tmp"


def _temp_name(path):
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")


def _remove_stale_temps(path):
    """Delete leftovers of earlier saves to `path` whose writing process no longer exists."""
    directory, name = os.path.split(path)
    prefix = f".{name}."
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(_TMP_SUFFIX)):
            continue
        pid_text = entry[len(prefix):-len(_TMP_SUFFIX)].split(".")[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            pass


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def atomic_write(path, blob):
    """Write bytes so that `path` holds either its old or its new content, never a mix.

    The new file keeps an existing file's permission bits; a new one gets
    0666 less the umask, like any file the user creates. A `path` that is a
    symbolic link is written through: the link stays, its target gets the
    new content (the temp file is made beside the target, then renamed).
    """
    path = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise FinePruneError(f"cannot write {path!r}: it is a directory")
    _remove_stale_temps(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None
    tmp = _temp_name(path)
    created = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        created = True
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        created = False
        _fsync_directory(directory)
    except OSError as exc:
        raise FinePruneError(f"cannot write {path!r}: {exc.strerror or exc}; any previous file is unchanged") from None
    finally:
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def starts_with(path, prefix, offset=0):
    """Whether `path` is a regular file holding `prefix` at byte `offset` (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, offset + len(prefix))[offset:] == prefix
    except OSError:
        return False
    finally:
        os.close(fd)


def check_output_folder(path, what):
    """Refuse, before any work, an output `path` whose folder is missing, not a folder or not writable.

    A probe file is created and removed there: permission bits alone do not
    tell (root, ACLs, read-only mounts).
    """
    shown = os.fspath(path)
    directory = os.path.dirname(os.path.realpath(shown)) or "."
    if os.path.isdir(shown):
        raise FinePruneError(f"{what} {shown!r} is a directory; expected a file name")
    if not os.path.isdir(directory):
        raise FinePruneError(f"{what} {shown!r}: its folder {directory!r} does not exist (or is not a folder)")
    probe = os.path.join(directory, f".fineprune-probe.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise FinePruneError(f"{what} {shown!r} cannot be written: its folder {directory!r} is not writable "
                             f"({exc.strerror or exc})") from None


def _fsync_directory(directory):
    # Makes the rename itself durable; not every platform allows opening a directory.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_file(path, what, max_bytes=None, expect_prefix=None, error=FinePruneError):
    """The bytes of a regular file, refusing FIFOs, devices and folders before opening them.

    `max_bytes` caps what is read (a larger file is refused unread, one that grows past it while being
    read is refused too); `expect_prefix` = `(offset, bytes, explanation)` refuses a file whose
    leading bytes do not match, before reading the rest. `error` is the `FinePruneError` subclass raised
    for every refusal, so a caller's kind of file names its kind of error (a model file: `ModelError`).
    """
    shown = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {shown!r} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {shown!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} {shown!r} is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {shown!r} is not a regular file (a pipe, socket or device); expected a file")
    limit = max_bytes if max_bytes is not None else float("inf")
    try:
        with open(path, "rb") as f:
            # The size of the file actually opened (it may have been replaced since the stat above).
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise error(f"{what} {shown!r} has {size:,} bytes; at most {max_bytes:,} are expected")
            if expect_prefix is not None:
                offset, prefix, explanation = expect_prefix
                head = f.read(offset + len(prefix))
                if head[offset:] != prefix:
                    raise error(f"{what} {shown!r} {explanation} (found {head[offset:]!r} at byte {offset}, "
                                f"expected {prefix!r})")
                f.seek(0)
            return _read_capped(f, size, limit, lambda: f"{what} {shown!r}", error)
    except OSError as exc:
        raise error(f"cannot read {what} {shown!r}: {exc.strerror or exc}") from None


# f.read(n) allocates n bytes before reading, so reads are sized by the file, never by the cap.
_GROWTH_CHUNK = 1 << 20


def _read_capped(f, size, limit, name, error=FinePruneError):
    """What `f` holds: `size` bytes in one read, then whatever it grew by, refused once past `limit`."""
    parts = [f.read(size)]
    total = len(parts[0])
    while True:
        chunk = f.read(int(min(_GROWTH_CHUNK, limit + 1 - total)))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise error(f"{name()} grew past {limit:,} bytes while being read; at most {limit:,} are expected")
    return parts[0] if len(parts) == 1 else b"".join(parts)
