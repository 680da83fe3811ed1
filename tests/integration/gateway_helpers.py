"""Shared pieces of the gateway integration tests: a seeded store, workers, and a load loop."""

from __future__ import annotations

import os
import pathlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from protos.errors import RunnerFleetError
from runnerfleet.client import Client
from tests.support import procs

__all__ = [
    "IRIS_X",
    "seed_store",
    "save_echo_versions",
    "start_workers",
    "LoadLoop",
    "scrape",
    "metric_value",
]

IRIS_X = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float64
)


def seed_store(home: pathlib.Path) -> dict[str, str]:
    """Save iris_clf and echo into the store at `home`; returns {name: tag}."""
    from runnerfleet import demo_models

    previous = os.environ.get("RUNNERFLEET_HOME")
    os.environ["RUNNERFLEET_HOME"] = str(home)
    try:
        return {"iris_clf": str(demo_models.save_iris()), "echo": str(demo_models.save_echo())}
    finally:
        if previous is None:
            os.environ.pop("RUNNERFLEET_HOME", None)
        else:
            os.environ["RUNNERFLEET_HOME"] = previous


def save_echo_versions(home: pathlib.Path, max_saves: int = 40) -> tuple[str, str, str]:
    """Save echo versions (old, mid, new), created in that order, where mid sorts before old.

    So neither "the version that sorts last" nor "the last one loaded" is the newest by
    accident: versions are random strings, and saves repeat (bounded) until one sorts before
    an earlier one, which becomes old. Compared with the greatest earlier save, not the
    first: the first can sort so early that 40 saves find nothing before it (a CI run drew
    23z5d66p4intm55y); now every save would have to be a new greatest.
    """
    from runnerfleet import demo_models

    previous = os.environ.get("RUNNERFLEET_HOME")
    os.environ["RUNNERFLEET_HOME"] = str(home)
    try:
        old = str(demo_models.save_echo().version)  # the greatest version saved so far
        for _ in range(max_saves):
            mid = str(demo_models.save_echo().version)
            if mid < old:
                break
            old = mid
        else:
            raise AssertionError(f"no echo version sorting before an earlier one in {max_saves}")
        new = str(demo_models.save_echo().version)
        return old, mid, new
    finally:
        if previous is None:
            os.environ.pop("RUNNERFLEET_HOME", None)
        else:
            os.environ["RUNNERFLEET_HOME"] = previous


def start_workers(
    n: int, home: pathlib.Path, tags: list[str], **flags: Any
) -> list[procs.ProcessHandle]:
    """Start `n` workers serving `tags` and wait until all are SERVING."""
    workers = [procs.start_worker(tags, home, **flags) for _ in range(n)]
    for worker in workers:
        procs.wait_serving(worker.address)
    return workers


class LoadLoop:
    """`clients` threads, each with its own Client (no client retries), sending until stopped."""

    def __init__(
        self,
        address: str,
        clients: int,
        send: Callable[[Client], bool],
        *,
        timeout_s: float = 10.0,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.ok = 0
        self.wrong = 0
        self.failures: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._run, args=(address, send, timeout_s, client_kwargs or {}), daemon=True
            )
            for _ in range(clients)
        ]

    def _run(
        self, address: str, send: Callable[[Client], bool], timeout_s: float, kwargs: dict
    ) -> None:
        with Client(address, timeout_s=timeout_s, retries=0, **kwargs) as client:
            while not self._stop.is_set():
                try:
                    right = send(client)
                except RunnerFleetError as exc:
                    with self._lock:
                        self.failures.append((exc.code.value, exc.message))
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if right:
                        self.ok += 1
                    else:
                        self.wrong += 1

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for_ok(self, count: int, timeout_s: float = 30.0) -> None:
        """Block until at least `count` more requests succeeded (bounded)."""
        target = self.ok + count
        deadline = time.monotonic() + timeout_s
        while self.ok < target:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {self.ok} of {target} requests succeeded; failures {self.failures[-3:]}"
                )
            time.sleep(0.02)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def scrape(metrics_port: int) -> str:
    """The text of a process's /metrics page."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of `name` with exactly these labels (any order), or None."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if found == labels:
            return float(value)
    return None
