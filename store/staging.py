"""Staging directories for saves, imports and deletes, and the cleanup of dead ones.

Each staging dir ``tmp/<id>/`` is created only after its owner holds an exclusive flock on
``tmp/<id>.lock``; the owner keeps it until the dir has been renamed away or removed. A dir
whose lock can be taken therefore belongs to a dead process (SIGKILL releases flocks) and is
removed by the next save. Staging lives under the store root so the final rename stays on
one filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator

__all__ = ["staging_dir", "cleanup_dead", "try_lock", "fsync_tree", "exchange_paths"]

# A lock file with no dir is normally gone within milliseconds; only old orphans are removed,
# so a lock just created by a live owner is never unlinked under it.
_ORPHAN_LOCK_AGE_S = 3600.0


@contextlib.contextmanager
def try_lock(path: str) -> Iterator[bool]:
    """Yield True while holding an exclusive non-blocking flock on ``path``, else False."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def staging_dir(tmp_root: str, kind: str = "save") -> Iterator[str]:
    """A fresh private dir under ``tmp_root``; removed on exit unless renamed away."""
    os.makedirs(tmp_root, exist_ok=True)
    name = f"{kind}-{uuid.uuid4().hex}"
    path = os.path.join(tmp_root, name)
    lock_path = path + ".lock"
    with try_lock(lock_path) as locked:
        assert locked, "a fresh uuid lock cannot be held by anyone else"
        os.mkdir(path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)


def cleanup_dead(tmp_root: str) -> int:
    """Remove staging dirs whose owner died; return how many were removed."""
    try:
        entries = os.listdir(tmp_root)
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        path = os.path.join(tmp_root, entry)
        if entry.endswith(".lock"):
            _remove_orphan_lock(path)
            continue
        if not os.path.isdir(path):
            continue
        lock_path = path + ".lock"
        with try_lock(lock_path) as locked:
            if not locked:
                continue  # its owner is alive
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
            removed += 1
    return removed


def _remove_orphan_lock(lock_path: str) -> None:
    if os.path.exists(lock_path[: -len(".lock")]):
        return
    try:
        if time.time() - os.path.getmtime(lock_path) < _ORPHAN_LOCK_AGE_S:
            return
    except FileNotFoundError:
        return
    with try_lock(lock_path) as locked, contextlib.suppress(FileNotFoundError):
        if locked:
            os.unlink(lock_path)


def fsync_tree(directory: str) -> None:
    """Flush every file under ``directory`` to disk before it is renamed into view."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: str, b: str) -> None:
    """Swap two existing paths in one step: renameat2(RENAME_EXCHANGE) on Linux.

    Used only to replace a version folder of a store written before version links; where the
    call is missing (not Linux, old libc) it falls back to remove-then-rename (not atomic).
    """
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), b)
    temp = f"{b}.old-{uuid.uuid4().hex}"
    os.rename(b, temp)
    os.rename(a, b)
    os.rename(temp, a)
