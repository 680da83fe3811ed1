"""Whether a process id names a live process, and removing what dead processes left behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

__all__ = ["pid_alive", "remove_files_of_dead_processes"]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists (ours or another user's), False if no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_files_of_dead_processes(directory: str, pid_of: Callable[[str], int | None]) -> int:
    """Unlink this user's files in ``directory`` whose name carries a pid that no longer runs.

    ``pid_of`` reads the pid from a file name (None: not such a file, left alone). How many.
    """
    removed = 0
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            pid = pid_of(name)
            if pid is None or pid_alive(pid):
                continue
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid == os.getuid():
                    os.unlink(path)
                    removed += 1
    return removed
