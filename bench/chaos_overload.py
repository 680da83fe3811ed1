"""Overload scenario: 2 workers serving a costed model behind a gateway, 3x and 10x capacity.

The model (``tests.support.models.RowCost``) costs 20 ms + 3 ms per row and answers ``2x + 1``.
First the capacity is measured in the same run (``capacity_clients`` closed-loop clients
with a long deadline: answers per second). Then for each load factor N, an open-loop
generator sends ``N x capacity`` requests per second on a fixed schedule for ``phase_s`` with
200 ms deadlines, whatever the answers (bench/chaos_load.py, its own process: requests encoded
before and answers checked after the window). Open loop, because closed-loop clients that back
off on refusals offer some rate other than N x capacity. Latencies are measured from the
actual send time; the generator's lag behind its schedule is reported with them (on a
2-core machine the generator competes with the gateway and workers for CPU: a large lag
means the offered rate was lower than N x capacity). Reported per phase: goodput (correct
answers within the deadline per second) against capacity, refusals (RESOURCE_EXHAUSTED at
once) and their p99 latency, misses of admitted requests (late, shed after queueing,
DEADLINE_EXCEEDED; a DEADLINE_EXCEEDED may also be a call the gateway's event loop never got
to before its deadline, so the row says "not refused", not "admitted"), wrong answers, other
codes; after the load stops and one second passes, a lone client's latency; the RSS of every
process; the 1-minute load average at the phase's end; the share of the machine's CPU the
hypervisor stole during the phase. Capacity is measured again after the last phase (a
drifting machine shows as a gap). With ``floor``, each phase's load is then sent again, at the
same rate, to a bare grpc.aio server that refuses every call (bench/refuse_floor.py): its
refusal latency and CPU per call are what any Python gRPC server pays on this machine at that
rate, measured in the same run.

Used by tests/chaos/test_overload.py (short phases, asserts counts) and `make bench-chaos`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.chaos import ChaosContext, Row, scenario
from bench.proc_stat import machine_ticks, steal_share
from tests.support import procs
from tests.support.gateway_procs import start_gateway
from tests.support.rss import cpu_seconds, rss_bytes, run_queue_wait_seconds

__all__ = ["run_overload", "load", "MODEL", "WORKER_FLAGS"]

MODEL = "rowcost"
ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER_FLAGS: dict[str, Any] = {"max_batch_size": 8, "threads": 1}


def load(
    target: str,
    *,
    duration_s: float,
    deadline_s: float,
    seed: int,
    clients: int | None = None,
    rate_rps: float | None = None,
) -> dict:
    """Run bench/chaos_load.py against ``target`` (closed loop with ``clients``, open loop at
    ``rate_rps``) and return its counts."""
    mode = ["--clients", str(clients)] if rate_rps is None else ["--rate-rps", f"{rate_rps:.3f}"]
    argv = [
        sys.executable, "-m", "bench.chaos_load", "--target", target, *mode,
        "--duration-s", str(duration_s), "--deadline-s", str(deadline_s), "--seed", str(seed),
        "--model", MODEL,
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration_s + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _cpu_s(handles: dict[str, procs.ProcessHandle]) -> dict[str, float]:
    return {name: cpu_seconds(h.pid) for name, h in handles.items()}


def _rss_mib(handles: dict[str, procs.ProcessHandle]) -> dict[str, float]:
    return {name: round(rss_bytes(h.pid) / 2**20, 1) for name, h in handles.items()}


def run_overload(
    store_home: str | os.PathLike[str],
    *,
    phase_s: float,
    factors: tuple[float, ...] = (3.0, 10.0),
    deadline_s: float = 0.2,
    capacity_s: float = 4.0,
    capacity_clients: int = 48,
    floor: bool = False,
) -> dict:
    """Start the cluster, measure capacity, run each overload phase; stop everything (with
    ``floor``, then each phase's load against bench/refuse_floor.py too)."""
    started: dict[str, procs.ProcessHandle] = {}
    try:
        for i in range(2):
            started[f"worker{i}"] = procs.start_worker(MODEL, store_home, **WORKER_FLAGS)
        for handle in started.values():
            procs.wait_serving(handle.address, 60)
        workers = [h.address for h in started.values()]
        started["gateway"] = start_gateway(workers)
        target = started["gateway"].address
        load(target, clients=4, duration_s=1.0, deadline_s=2.0, seed=99)  # learn the cost
        rss_before = _rss_mib(started)
        cap = load(target, clients=capacity_clients, duration_s=capacity_s, deadline_s=2.0, seed=1)
        capacity_rps = cap["goodput_rps"]
        result: dict = {"capacity": cap, "capacity_rps": capacity_rps, "phases": {}}
        for n, factor in enumerate(factors):
            cpu_before = _cpu_s(started)
            waited_before = run_queue_wait_seconds(started["gateway"].pid)
            ticks_before = machine_ticks()
            phase = load(
                target,
                rate_rps=max(factor * capacity_rps, 1.0),
                duration_s=phase_s,
                deadline_s=deadline_s,
                seed=10 + n,
            )
            phase["factor"] = factor
            phase["steal_share"] = steal_share(ticks_before, machine_ticks())
            # CPU used during the phase, in cores (the generator's: its own, over its window)
            cpu = {k: v - cpu_before[k] for k, v in _cpu_s(started).items()}
            cpu["generator"] = phase["window_cpu_s"]
            phase["cpu_cores"] = {k: round(v / phase["elapsed_s"], 2) for k, v in cpu.items()}
            phase["gateway_cpu_us_per_request"] = 1e6 * cpu["gateway"] / max(phase["sent"], 1)
            waited_s = run_queue_wait_seconds(started["gateway"].pid) - waited_before
            phase["gateway_loop_waiting_share"] = waited_s / phase["elapsed_s"]
            phase["rss_mib"] = _rss_mib(started)
            phase["loadavg_1m"] = os.getloadavg()[0]
            time.sleep(1.0)  # then: how fast is a lone client served again?
            after = load(target, clients=1, duration_s=1.0, deadline_s=1.0, seed=50 + n)
            phase["after"] = after
            result["phases"][f"{factor:g}x"] = phase
        again = load(
            target, clients=capacity_clients, duration_s=capacity_s, deadline_s=2.0, seed=2
        )
        result["capacity_after_rps"] = again["goodput_rps"]
        result["rss_before_mib"] = rss_before
        result["rss_after_mib"] = _rss_mib(started)
    finally:
        for handle in reversed(list(started.values())):
            procs.stop(handle)
    if floor:
        for phase in result["phases"].values():
            phase["floor"] = refusal_floor(phase["offered_rps"], phase_s, deadline_s)
    return result


def refusal_floor(rate_rps: float, duration_s: float, deadline_s: float) -> dict:
    """The same open-loop load against bench/refuse_floor.py; its counts plus its CPU per call."""
    argv = [sys.executable, "-m", "bench.refuse_floor", "serve", "--port-file", "{port_file}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    server = procs.start_process(argv, env=env)
    try:
        cpu_before = cpu_seconds(server.pid)
        out = load(server.address, rate_rps=rate_rps, duration_s=duration_s,
                   deadline_s=deadline_s, seed=77)  # fmt: skip
        out["server_cpu_us_per_call"] = (
            1e6 * (cpu_seconds(server.pid) - cpu_before) / max(out["sent"], 1)
        )
        return out
    finally:
        procs.stop(server)


def _misses(phase: dict) -> int:
    return int(phase["late"] + phase["shed"] + phase["deadline"])


def _floor_rows(s: str, ph: dict) -> list[Row]:
    floor = ph.get("floor")
    if not floor:
        return []
    return [
        Row(s, "same load, bare grpc.aio server refusing every call: refusal p99 / CPU per call",
            f"{floor['refusal_p99_ms'] or 0:.2f} ms / {floor['server_cpu_us_per_call']:.0f} us "
            f"({floor['refused']:,} refused of {floor['sent']:,}, generator lag p99 "
            f"{floor['send_lag_p99_ms'] or 0:.1f} ms)"),
    ]  # fmt: skip


TITLE = (
    "2 workers (RowCost 20 ms + 3 ms/row, batches of 8) behind a gateway; open-loop load of "
    "N x capacity requests/s (fixed schedule, latency from the actual send) with 200 ms "
    "deadlines, 30 s per phase"
)


@scenario("overload", title=TITLE)
def bench_overload(ctx: ChaosContext) -> list[Row]:
    from tests.chaos.conftest import build_chaos_store

    home = pathlib.Path(tempfile.mkdtemp(dir=ctx.workdir))
    os.environ["RUNNERFLEET_HOME"] = str(home)
    build_chaos_store(home)
    res = run_overload(home, phase_s=ctx.duration_s, floor=True)
    cap = res["capacity_rps"]
    rows = [
        Row("overload", "capacity (same run: before / after the phases)",
            f"{cap:.0f} / {res['capacity_after_rps']:.0f} req/s"),
    ]  # fmt: skip
    for name, ph in res["phases"].items():
        s = f"overload {name}"
        admitted = ph["ok"] + _misses(ph)
        goodput = ph["goodput_rps"]
        after = ph["after"]
        rss = ph["rss_mib"]
        rows += [
            Row(s, "offered / sent", f"{ph['offered_rps']:.0f} req/s / {ph['sent']:,}"),
            Row(s, "generator lag behind schedule p99 / max",
                f"{ph['send_lag_p99_ms'] or 0:.1f} / {ph['send_lag_max_ms'] or 0:.1f} ms"),
            Row(s, "load average (1 min) at the end", f"{ph['loadavg_1m']:.1f}"),
            Row(s, "CPU cores used (gateway CPU per request)", ", ".join(
                f"{k} {v:.2f}" for k, v in ph["cpu_cores"].items())
                + f" ({ph['gateway_cpu_us_per_request']:.0f} us)"),
            Row(s, "gateway event loop waiting for a CPU",
                f"{ph['gateway_loop_waiting_share']:.0%} of the phase"),
            Row(s, "CPU stolen by the hypervisor (whole machine)",
                "-" if ph.get("steal_share") is None else f"{ph['steal_share']:.0%}"),
            Row(s, "goodput vs capacity", f"{goodput:.0f} req/s ({goodput / cap:.0%})",
                ">= 90%", goodput >= 0.9 * cap),
            Row(s, "refused at once (RESOURCE_EXHAUSTED)", f"{ph['refused']:,}"),
            Row(s, "refusal latency p99", f"{ph['refusal_p99_ms'] or 0:.2f} ms", "< 5 ms",
                (ph["refusal_p99_ms"] or 0) < 5),
            *_floor_rows(s, ph),
            Row(s, "not refused: OK within deadline", f"{ph['ok']:,} of {admitted:,} "
                f"(late {ph['late']}, shed {ph['shed']}, deadline {ph['deadline']})",
                "all", _misses(ph) == 0),
            Row(s, "wrong answers / other codes", f"{ph['wrong']} / {ph['codes'] or 0}",
                "0 / 0", ph["wrong"] == 0 and not ph["codes"]),
            Row(s, "lone client 1 s after load stops", f"p50 {after['ok_p50_ms'] or 0:.1f} ms, "
                f"{after['ok']} ok of {after['sent']}", "normal", after["ok"] == after["sent"]),
            Row(s, "RSS MiB (before -> after)", ", ".join(
                f"{k} {res['rss_before_mib'][k]:.0f}->{v:.0f}" for k, v in rss.items())),
        ]  # fmt: skip
    return rows
