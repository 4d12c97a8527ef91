"""Where `data fetch` writes: only folders no other user can change, files opened without following links, one
fetch per data folder at a time, and no staging left behind by a killed run.

A name inside a folder that another user can write may be swapped for a link at any moment, so such a folder is
refused rather than checked name by name; inside a folder that is ours alone, a link can only be one we (or root)
made, and is removed, never followed. POSIX only (`data_fetch.fetch` refuses
elsewhere); the module imports anywhere, so the CLI does.
"""

import os
import shutil
import stat

from .errors import FinePruneError

LOCK_NAME = ".fetch.lock"
STAGING_PREFIX = ".fetch-"


NOFOLLOW, CLOEXEC = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_CLOEXEC", 0)


def _owner_ok(uid):
    return uid in (os.geteuid(), 0)


def _group_is_ours_alone(gid):
    """Whether only the current user is in group `gid` (a user private group, as umask 002 systems make)."""
    try:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
        members = set(grp.getgrgid(gid).gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid}
    except (ImportError, KeyError):
        return False
    return members <= {me}


def _why_untrusted(info):
    """None if a folder with this stat is ours alone, else the reason it is not."""
    if not _owner_ok(info.st_uid):
        return f"it belongs to another user (uid {info.st_uid})"
    writable = info.st_mode & stat.S_IWOTH or info.st_mode & stat.S_IWGRP and not _group_is_ours_alone(info.st_gid)
    if writable and not info.st_mode & stat.S_ISVTX:
        who = "other users" if info.st_mode & stat.S_IWOTH else "its group"
        return f"{who} can write it (mode {stat.S_IMODE(info.st_mode):04o}, no sticky bit)"
    return None


def check_data_folder(root):
    """Refuse a data folder that another user owns or can rename things in (a shared, writable `$FINEPRUNE_DATA`)."""
    reason = _why_untrusted(os.stat(root))
    if reason:
        raise FinePruneError(f"data fetch does not write into {root}: {reason}, so someone else could swap its "
                             "files for links; choose a folder of your own with -o DIR (or chmod go-w it)")


def private_folder(path):
    """`path` as a real folder of ours that no one else can write, made (mode 0700) if missing; else refused."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise FinePruneError(f"{path} is {describe(info)}, not a folder; data fetch does not follow links: remove it "
                             "and fetch again")
    reason = _why_untrusted(info)
    if reason:
        raise FinePruneError(f"data fetch does not use {path}: {reason}; remove it and fetch again")
    return path


def describe(info):
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(info.st_mode)), "a special file")


def _ours(info):
    return stat.S_ISREG(info.st_mode) and _owner_ok(info.st_uid) and info.st_nlink == 1


def remove_foreign(path, log):
    """Remove whatever is at `path` unless it is a regular file of ours with one link; returns whether it stays.

    `unlink` removes a link itself, never what it points to."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if _ours(info):
        return True
    if stat.S_ISDIR(info.st_mode):
        raise FinePruneError(f"{path} is a folder where data fetch keeps a download; remove it and fetch again")
    os.unlink(path)
    links = f" with {info.st_nlink} hard links" if stat.S_ISREG(info.st_mode) else ""
    log(f"  removed {path}: {describe(info)}{links}, not a download of ours")
    return False


def open_part(path, log):
    """A file descriptor (read-write) on the partial download at `path`: the one a previous run left if it is a
    regular file of ours, else a new one created exclusively (O_EXCL), never through a link (O_NOFOLLOW)."""
    flags = os.O_RDWR | NOFOLLOW | CLOEXEC
    if remove_foreign(path, log):
        fd = os.open(path, flags)
        if not _ours(os.fstat(fd)):  # replaced between the check and the open
            os.close(fd)
            raise FinePruneError(f"{path} changed while data fetch opened it; fetch again")
        return fd
    return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)


def open_kept(path):
    """A read-only descriptor on a download kept by an earlier run, or None if there is none of ours."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a link; remove_foreign deals with it
        return None
    if not _ours(os.fstat(fd)):
        os.close(fd)
        return None
    return fd


def make_folders(root, relative_parent):
    """Make `root/relative_parent` folder by folder, refusing a link or a folder someone else can change."""
    path = root
    for part in relative_parent.parts:
        path = path / part
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            info = os.lstat(path)
            reason = (f"is {describe(info)}" if not stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode)
                      else _why_untrusted(info))
            if reason:
                raise FinePruneError(f"data fetch does not lay out into {path}: {reason}; move it away") from None


def remove_stale_staging(root, log):
    """Remove the staging folders (`.fetch-*`) a killed run left; called under the lock, so none is in use."""
    with os.scandir(root) as entries:
        stale = [e for e in entries if e.name.startswith(STAGING_PREFIX)
                 and _owner_ok(e.stat(follow_symlinks=False).st_uid)]
    for entry in stale:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)  # does not follow links inside (fd-based on Linux)
        else:
            os.unlink(entry.path)
        log(f"removed {entry.path}, left by an interrupted data fetch")


class FolderLock:
    """One `data fetch` per data folder: an exclusive `flock` on `ROOT/.fetch.lock`; a second run says so and waits.

    The holder removes the file when it finishes; a waiter that then finds the path gone (or holding another file)
    locks the new one instead, so two runs never both hold a lock.
    """

    def __init__(self, root, log):
        self.path, self.log, self.fd = os.path.join(root, LOCK_NAME), log, None

    def __enter__(self):
        import fcntl  # POSIX; imported here so that the CLI imports anywhere

        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                self.log(f"another data fetch (pid {holder}) is writing to {os.path.dirname(self.path)}; "
                         "waiting for it to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            if self._still_there(fd):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def _open(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC, 0o600)
        except OSError as exc:
            raise FinePruneError(f"cannot open the lock file {self.path}: {exc.strerror} (a link? remove it)") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _owner_ok(info.st_uid):
            os.close(fd)
            raise FinePruneError(f"the lock file {self.path} is {describe(info)} of uid {info.st_uid}, not ours; "
                                 "remove it and fetch again")
        return fd

    def _still_there(self, fd):
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def __exit__(self, *exc):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # still holding the lock: a waiter sees the file gone and locks a fresh one
        except OSError:
            pass
        os.close(self.fd)
