"""Resident memory and CPU time of a process by PID, read from /proc (Linux), for the chaos
tests and bench."""

from __future__ import annotations

import os
import pathlib

__all__ = ["rss_bytes", "peak_rss_bytes", "cpu_seconds", "run_queue_wait_seconds"]


def _status_kib(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    """Current resident set size (VmRSS) of `pid` in bytes."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of `pid` in bytes since it started."""
    return _status_kib(pid, "VmHWM") * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far, in seconds (all its threads)."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def run_queue_wait_seconds(pid: int) -> float:
    """Seconds the main thread of `pid` has spent runnable but waiting for a CPU (schedstat).

    For an asyncio server that is its event loop's thread: time it wanted a core and the
    machine had none, which every request it handles meanwhile waits on too.
    """
    fields = pathlib.Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(fields[1]) / 1e9
