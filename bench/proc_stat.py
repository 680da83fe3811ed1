"""The benchmark's one reader of `/proc/<pid>/stat` (Linux): parents, process groups, CPU, RSS.

The load generators report the CPU and resident memory of the system under test by process
group (`cpu_s_by_group`, `group_rss`); the peers find the groups a server spread itself over
(`tree_pgids`: BentoML's workers run in sessions of their own, Ray's actors in groups of
their own). Processes that exit while the table is read are skipped. Standard library only: the
load generators import it beside `tritonclient` (never `protos`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "ProcStat", "cpu_s_by_group", "group_cpu_s", "group_rss", "machine_ticks", "read_all",
    "steal_share", "tree_pgids",
]  # fmt: skip


@dataclass(frozen=True)
class ProcStat:
    """One live process as `/proc/<pid>/stat` shows it."""

    pid: int
    comm: str
    ppid: int
    pgid: int
    cpu_s: float  # user + system CPU seconds so far


def read_all() -> Iterator[ProcStat]:
    """Every live process, read now."""
    tick_hz = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
            head, tail = raw.rsplit(b")", 1)
            # after the ")": state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
            fields = tail.split()
            yield ProcStat(
                pid=int(d),
                comm=head.split(b"(", 1)[1].decode(errors="replace"),
                ppid=int(fields[1]),
                pgid=int(fields[2]),
                cpu_s=(int(fields[11]) + int(fields[12])) / tick_hz,
            )
        except (OSError, ValueError, IndexError):
            continue  # gone (or not readable) while we looked


def cpu_s_by_group(pgids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of the live processes of each of these process groups."""
    out = dict.fromkeys(pgids, 0.0)
    for p in read_all():
        if p.pgid in out:
            out[p.pgid] += p.cpu_s
    return out


def group_cpu_s(pgids: set[int]) -> float:
    """User + system CPU seconds of every live process in these process groups."""
    return sum(cpu_s_by_group(pgids).values())


def group_rss(pgids: set[int]) -> list[dict]:
    """PID, command and resident set size (`rss_mib`) of every live process in these groups."""
    out = []
    for p in read_all():
        if p.pgid not in pgids:
            continue
        try:
            with open(f"/proc/{p.pid}/status") as f:
                rss_kib = next((ln.split()[1] for ln in f if ln.startswith("VmRSS:")), "0")
        except OSError:
            continue
        out.append({"pid": p.pid, "comm": p.comm, "rss_mib": int(rss_kib) / 1024})
    return out


def tree_pgids(root_pid: int) -> list[int]:
    """The process groups of `root_pid` and every live descendant of it, sorted."""
    table = list(read_all())
    group = {p.pid: p.pgid for p in table}
    children: dict[int, list[int]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p.pid)
    seen, todo = {root_pid}, [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return sorted({group.get(pid, pid) for pid in seen})


def machine_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of the whole machine so far, from `/proc/stat`'s "cpu" line.

    Steal is time a virtual CPU was runnable but the hypervisor ran something else: on a shared
    host it is the noise no repeat can average away. (0, 0) where `/proc/stat` cannot be read.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the machine's CPU time stolen between two `machine_ticks()` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else None
