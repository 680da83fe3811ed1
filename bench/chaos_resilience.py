"""Chaos scenarios for hung, killed and drained workers and restarted gateways (issue 10, part B).

Each engine starts its own processes on loopback (``runnerfleet.supervisor``), drives closed-loop
clients (``runnerfleet.client``, one thread each, a deadline per request), breaks something,
and returns what it counted. The tests in ``tests/chaos/`` run the engines short and assert
counts; ``make bench-chaos`` runs them at full length (rows below). Everything started is
stopped by PID before an engine returns, also when it fails.

- ``hung_worker``: one of two workers SIGSTOPped for ``stop_s`` under 32-way load, 2 s deadlines;
  failed requests, and seconds from SIGCONT until the gateway routes to it again.
- ``worker_signal``: SIGKILL or SIGTERM of one of two workers under load; failed requests, and
  seconds from its restart (same port) until the gateway routes to it again.
- ``gateway_restart``: two gateways, clients given both addresses; each gateway in turn is
  stopped (SIGTERM, then the other SIGKILL) and started again on its port; failed requests and
  seconds until the restarted gateway is SERVING.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence

import numpy as np

from bench.chaos import ChaosContext, Row, scenario
from runnerfleet.supervisor import Child, Supervisor, cli_command, wait_serving

__all__ = [
    "IRIS_X",
    "Cluster",
    "running_cluster",
    "ClosedLoop",
    "Counts",
    "hung_worker",
    "worker_signal",
    "gateway_restart",
    "metric",
    "wait_metric",
]

IRIS_X = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float64
)
IRIS_MODEL = "iris_clf"


@dataclasses.dataclass
class Counts:
    """What one scenario counted."""

    ok: int = 0
    failed: int = 0
    wrong: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)  # the first few, as CODE: msg
    serve_again_s: float | None = None
    extra: dict[str, float] = dataclasses.field(default_factory=dict)


class ClosedLoop:
    """``clients`` threads, each with its own Client, sending iris requests until stopped."""

    def __init__(
        self,
        addresses: Sequence[str],
        clients: int,
        expected: np.ndarray,
        *,
        deadline_s: float = 2.0,
        retries: int = 0,
    ) -> None:
        self.counts = Counts()
        self._expected = expected
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._args = (list(addresses), deadline_s, retries)
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"chaos-client-{i}")
            for i in range(clients)
        ]

    def _run(self) -> None:
        from protos.errors import RunnerFleetError
        from runnerfleet.client import Client

        addresses, deadline_s, retries = self._args
        with Client(addresses, timeout_s=deadline_s, retries=retries) as client:
            while not self._stop.is_set():
                try:
                    answer = client.infer(IRIS_MODEL, IRIS_X)
                except RunnerFleetError as exc:
                    with self._lock:
                        self.counts.failed += 1
                        if len(self.counts.failures) < 10:
                            self.counts.failures.append(f"{exc.code.value}: {exc.message[:160]}")
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if np.array_equal(answer, self._expected):
                        self.counts.ok += 1
                    else:
                        self.counts.wrong += 1

    def wait_for_ok(self, count: int, timeout_s: float = 60.0) -> None:
        """Block until ``count`` more requests succeeded (bounded)."""
        target = self.counts.ok + count
        deadline = time.monotonic() + timeout_s
        while self.counts.ok < target:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.counts.ok} of {target} requests succeeded; {self.counts.failures[:3]}"
                )
            time.sleep(0.02)

    def __enter__(self) -> ClosedLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


class Cluster:
    """Workers and gateways of one scenario, started through the one supervisor."""

    def __init__(self, store_home: pathlib.Path) -> None:
        self.env = {**os.environ, "RUNNERFLEET_HOME": str(store_home)}
        self.supervisor = Supervisor(env=self.env)
        self.workers: list[Child] = []
        self.gateways: list[Child] = []

    def start_worker(
        self, port: int = 0, models: str = f"{IRIS_MODEL}:latest", **env: str
    ) -> Child:
        argv = cli_command(
            "worker", "--models", models, "--device", "cpu", "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", "0", "--http-port", "0",
        )  # fmt: skip
        child = self.supervisor.start("worker", argv, timeout_s=120, env={**self.env, **env})
        self.workers.append(child)
        return child

    def start_gateway(
        self, workers: Sequence[str], port: int = 0, *flags: str, **env: str
    ) -> Child:
        """A gateway on 127.0.0.1; ``env`` adds ``RUNNERFLEET_*`` settings for it alone."""
        argv = cli_command(
            "gateway", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0",
            "--http-port", "0", "--workers", ",".join(workers), *flags,
        )  # fmt: skip
        child = self.supervisor.start("gateway", argv, timeout_s=120, env={**self.env, **env})
        self.gateways.append(child)
        return child

    def close(self) -> None:
        self.supervisor.close()


@contextlib.contextmanager
def running_cluster(store_home: pathlib.Path) -> Iterator[Cluster]:
    """A Cluster whose processes are all stopped (by PID) when the block ends."""
    cluster = Cluster(store_home)
    try:
        yield cluster
    finally:
        cluster.close()


def metric(metrics_port: int, name: str, **labels: str) -> float | None:
    """One sample of a process's /metrics, or None."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample == name and dict(re.findall(r'(\w+)="([^"]*)"', label_text)) == labels:
            return float(value)
    return None


def wait_metric(
    metrics_port: int, name: str, value: float, timeout_s: float, **labels: str
) -> float:
    """Seconds until the metric reads ``value`` (scraped every 20 ms, bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if metric(metrics_port, name, **labels) == value:
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError(f"{name}{labels} did not reach {value} within {timeout_s} s")


def _expected(worker: Child) -> np.ndarray:
    from runnerfleet.client import Client

    with Client(worker.address, timeout_s=30) as direct:
        answer = direct.infer(IRIS_MODEL, IRIS_X)
    assert isinstance(answer, np.ndarray)
    return answer


def _ejections(metrics_port: int, worker: str) -> float:
    total = 0.0
    for reason in ("consecutive_errors", "latency", "health"):
        total += (
            metric(
                metrics_port, "runnerfleet_gateway_ejections_total", worker=worker, reason=reason
            )
            or 0.0
        )
    return total


def hung_worker(
    store_home: pathlib.Path, stop_s: float, *, clients: int = 32, deadline_s: float = 2.0
) -> Counts:
    """SIGSTOP one of two workers for ``stop_s`` under load, then SIGCONT (module doc)."""
    with running_cluster(store_home) as cluster:
        victim, survivor = cluster.start_worker(), cluster.start_worker()
        for worker in (victim, survivor):
            wait_serving(worker.address, 120)
        gateway = cluster.start_gateway([victim.address, survivor.address])
        wait_serving(gateway.address, 60)
        load = ClosedLoop([gateway.address], clients, _expected(survivor), deadline_s=deadline_s)
        with load:
            load.wait_for_ok(300)
            os.kill(victim.pid, signal.SIGSTOP)
            try:
                time.sleep(stop_s)
            finally:
                os.kill(victim.pid, signal.SIGCONT)
            resumed_s = time.monotonic()
            wait_metric(
                gateway.metrics_port, "runnerfleet_gateway_worker_up", 1, 30,
                worker=victim.address,
            )  # fmt: skip
            load.counts.serve_again_s = time.monotonic() - resumed_s
            load.wait_for_ok(300)
        load.counts.extra["ejections"] = _ejections(gateway.metrics_port, victim.address)
        load.counts.extra["hedges"] = (
            metric(gateway.metrics_port, "runnerfleet_gateway_hedges_total", model=IRIS_MODEL)
            or 0.0
        )
        return load.counts


def worker_signal(
    store_home: pathlib.Path, sig: int, *, clients: int = 32, deadline_s: float = 2.0
) -> Counts:
    """Kill (SIGKILL) or drain (SIGTERM) one of two workers under load, restart it (module doc)."""
    with running_cluster(store_home) as cluster:
        victim, survivor = cluster.start_worker(), cluster.start_worker()
        for worker in (victim, survivor):
            wait_serving(worker.address, 120)
        gateway = cluster.start_gateway([victim.address, survivor.address])
        wait_serving(gateway.address, 60)
        load = ClosedLoop([gateway.address], clients, _expected(survivor), deadline_s=deadline_s)
        with load:
            load.wait_for_ok(300)
            os.kill(victim.pid, sig)
            victim.proc.wait(60)
            wait_metric(
                gateway.metrics_port, "runnerfleet_gateway_worker_up", 0, 10,
                worker=victim.address,
            )  # fmt: skip
            load.wait_for_ok(300)
            restarted_s = time.monotonic()
            cluster.start_worker(port=victim.grpc_port)
            wait_metric(
                gateway.metrics_port, "runnerfleet_gateway_worker_up", 1, 120,
                worker=victim.address,
            )  # fmt: skip
            load.counts.serve_again_s = time.monotonic() - restarted_s
            load.wait_for_ok(300)
        return load.counts


def gateway_restart(
    store_home: pathlib.Path, *, clients: int = 16, deadline_s: float = 2.0
) -> Counts:
    """Two gateways, clients given both; stop and restart each in turn (module doc)."""
    with running_cluster(store_home) as cluster:
        workers = [cluster.start_worker(), cluster.start_worker()]
        for worker in workers:
            wait_serving(worker.address, 120)
        addresses = [w.address for w in workers]
        first, second = cluster.start_gateway(addresses), cluster.start_gateway(addresses)
        for gateway in (first, second):
            wait_serving(gateway.address, 60)
        load = ClosedLoop(
            [first.address, second.address],
            clients,
            _expected(workers[0]),
            deadline_s=deadline_s,
            retries=2,
        )
        back_s: list[float] = []
        with load:
            load.wait_for_ok(200)
            for gateway, sig in ((first, signal.SIGTERM), (second, signal.SIGKILL)):
                cluster.supervisor.stop(gateway, sig, grace_s=30)
                load.wait_for_ok(200)  # the other gateway serves everyone meanwhile
                started_s = time.monotonic()
                again = cluster.start_gateway(addresses, gateway.grpc_port)
                wait_serving(again.address, 60)
                back_s.append(time.monotonic() - started_s)
                load.wait_for_ok(200)
        load.counts.serve_again_s = max(back_s)
        return load.counts


def _rows(
    name: str, counts: Counts, serve_target: str, serve_within_s: float | None = None
) -> list[Row]:
    rows = [
        Row(name, "failed requests", f"{counts.failed} of {counts.ok + counts.failed}", "0",
            counts.failed == 0),
        Row(name, "wrong answers", str(counts.wrong), "0", counts.wrong == 0),
    ]  # fmt: skip
    if counts.serve_again_s is not None:
        met = None if serve_within_s is None else counts.serve_again_s < serve_within_s
        value = f"{counts.serve_again_s:.2f} s"
        rows.append(Row(name, "time to serve again", value, serve_target, met))
    for key, amount in counts.extra.items():
        rows.append(Row(name, key, f"{amount:.0f}"))
    return rows


def _bench_store(ctx: ChaosContext) -> pathlib.Path:
    from tests.chaos.conftest import build_chaos_store

    home = ctx.workdir / "resilience-store"
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("RUNNERFLEET_HOME")
    os.environ["RUNNERFLEET_HOME"] = str(home)
    try:
        build_chaos_store(home)
    finally:
        if previous is None:
            os.environ.pop("RUNNERFLEET_HOME", None)
        else:
            os.environ["RUNNERFLEET_HOME"] = previous
    return home


_STORES: dict[pathlib.Path, pathlib.Path] = {}


def _store(ctx: ChaosContext) -> pathlib.Path:
    if ctx.workdir not in _STORES:
        _STORES[ctx.workdir] = _bench_store(ctx)
    return _STORES[ctx.workdir]


@scenario(
    "sigstop_worker", title="one of two workers SIGSTOPped for 10 s, 32 clients, 2 s deadlines"
)
def _bench_sigstop(ctx: ChaosContext) -> list[Row]:
    stop_s = 3.0 if ctx.quick else 10.0
    counts = hung_worker(_store(ctx), stop_s)
    return _rows("sigstop_worker", counts, "< 2 s after SIGCONT", 2.0)


@scenario("sigkill_worker", title="one of two workers SIGKILLed under 32-way load, restarted")
def _bench_sigkill(ctx: ChaosContext) -> list[Row]:
    return _rows("sigkill_worker", worker_signal(_store(ctx), signal.SIGKILL), "after restart")


@scenario("sigterm_worker", title="one of two workers drained (SIGTERM) under load, restarted")
def _bench_sigterm(ctx: ChaosContext) -> list[Row]:
    return _rows("sigterm_worker", worker_signal(_store(ctx), signal.SIGTERM), "after restart")


@scenario("gateway_restart", title="two gateways, clients given both; each restarted in turn")
def _bench_gateway(ctx: ChaosContext) -> list[Row]:
    return _rows("gateway_restart", gateway_restart(_store(ctx)), "SERVING after start")
