"""Resident memory of a process by PID, read from /proc (Linux), for the chaos tests and bench."""

from __future__ import annotations

import pathlib

__all__ = ["rss_bytes", "peak_rss_bytes"]


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
