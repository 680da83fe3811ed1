"""Supervision (issue 10, finding 6): `cluster up` restarts a SIGKILLed worker on its port and
counts the restart; a child that keeps crashing is a crash loop and is not restarted forever."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from bench.chaos_resilience import IRIS_X
from runnerfleet.client import Client
from runnerfleet.restart_policy import RestartPolicy
from runnerfleet.supervisor import Child, Supervisor, wait_serving
from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LINE = re.compile(r"^\s+(\S+)\s+grpc (\S+)\s+metrics (\S+)\s+pid (\d+)")
RESTARTED = re.compile(r"^(\S+) restarted \(pid (\d+), restart (\d+)\)")


def _lines(stream, out: queue.Queue[str]) -> None:
    for raw in iter(stream.readline, b""):
        out.put(raw.decode("utf-8", "replace"))


def _wait_line(lines: queue.Queue[str], pattern: re.Pattern[str], timeout_s: float):
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        seen.append(line)
        if match := pattern.search(line):
            return match
    raise AssertionError(f"no line matching {pattern.pattern!r}; last lines: {seen[-10:]}")


def test_cluster_up_restarts_a_killed_worker_on_its_port(chaos_store):
    env = {**os.environ, "RUNNERFLEET_HOME": str(chaos_store), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-c", "from runnerfleet.cli import main; main()", "cluster", "up",
            "--workers", "2", "--models", "iris_clf:latest", "--port", "0", "--metrics-port", "0",
            "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, q in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=_lines, args=(stream, q), daemon=True).start()
    try:
        children: dict[str, tuple[str, int]] = {}
        while "gateway" not in children or len(children) < 3:
            match = _wait_line(out, LINE, 180)
            children[match[1]] = (match[2], int(match[4]))
        victim_address, victim_pid = children["worker-0"]
        os.kill(victim_pid, signal.SIGKILL)
        restarted = _wait_line(err, RESTARTED, 120)
        assert restarted[1] == "worker-0" and int(restarted[3]) == 1
        assert int(restarted[2]) != victim_pid
        wait_serving(victim_address, 120)  # the same address serves again
        with Client(victim_address, timeout_s=60) as direct:
            assert direct.infer("iris_clf", IRIS_X).shape == (3,)
        with Client(children["gateway"][0], timeout_s=30) as client:
            assert isinstance(client.infer("iris_clf", IRIS_X), np.ndarray)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        rest = []
        while not err.empty():
            rest.append(err.get())
        assert any("restarts: {'worker-0': 1}" in line for line in rest), rest[-5:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# a stand-in child that reports its ports, then exits with status 3 after a moment
_CRASHER = textwrap.dedent(
    """
    import json, os, sys, time
    path = sys.argv[sys.argv.index("--port-file") + 1]
    with open(path + ".tmp", "w") as f:
        json.dump({"grpc_port": 4242, "metrics_port": 4343, "pid": os.getpid()}, f)
    os.replace(path + ".tmp", path)
    print("listening grpc=127.0.0.1:4242 metrics=127.0.0.1:4343", flush=True)
    time.sleep(0.2)
    sys.exit(3)
    """
)


def test_a_crash_loop_stops_the_restarts_and_is_reported():
    gave_up: list[Child] = []
    done = threading.Event()
    sup = Supervisor(on_give_up=lambda c: (gave_up.append(c), done.set()))
    policy = RestartPolicy(base_backoff_s=0.05, max_backoff_s=0.2, max_restarts=3, window_s=60)
    try:
        child = sup.start("crasher", [sys.executable, "-c", _CRASHER], restart=policy)
        assert done.wait(60), child.log
        assert gave_up == [child] and child.gave_up
        assert child.restarts == 3
        assert "crash-looping" in child.log
        assert child.log.count("restarting crasher") == 3
        assert not child.alive()
    finally:
        sup.close()


def test_cluster_up_exits_non_zero_when_the_gateway_crash_loops(chaos_store):
    env = {**os.environ, "RUNNERFLEET_HOME": str(chaos_store), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-c", "from runnerfleet.cli import main; main()", "cluster", "up",
            "--workers", "1", "--models", "iris_clf:latest", "--port", "0", "--metrics-port", "0",
            "--quiet", "--max-restarts", "1"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, q in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=_lines, args=(stream, q), daemon=True).start()
    try:
        children: dict[str, tuple[str, int]] = {}
        while len(children) < 2:
            match = _wait_line(out, LINE, 180)
            children[match[1]] = (match[2], int(match[4]))
        os.kill(children["gateway"][1], signal.SIGKILL)
        restarted = _wait_line(err, RESTARTED, 120)
        assert restarted[1] == "gateway"
        os.kill(int(restarted[2]), signal.SIGKILL)  # a second crash within the window
        _wait_line(err, re.compile(r"gateway is crash-looping"), 60)
        assert proc.wait(90) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
