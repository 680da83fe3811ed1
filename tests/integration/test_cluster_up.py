"""`runnerfleet cluster up`: starts gateway + workers, serves, and SIGINT/SIGTERM leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from runnerfleet.client import Client
from tests.integration.gateway_helpers import IRIS_X, seed_store
from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

LINE = re.compile(r"^\s+(\S+)\s+grpc (\S+)\s+metrics (\S+)\s+pid (\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cluster_up_serves_and_stops_everything(tmp_path, sig):
    tags = seed_store(tmp_path)
    env = {**os.environ, "RUNNERFLEET_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-c", "from runnerfleet.cli import main; main()", "cluster", "up",
            "--workers", "2", "--models", tags["iris_clf"], "--port", "0", "--metrics-port", "0",
            "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    children: dict[str, tuple[str, int]] = {}
    try:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode()
            if match := LINE.match(line):
                children[match[1]] = (match[2], int(match[4]))
            if "Ctrl-C stops everything" in line:
                break
        assert set(children) == {"gateway", "worker-0", "worker-1"}, children
        with (
            Client(children["gateway"][0], timeout_s=30, retries=0) as client,
            Client(children["worker-0"][0], timeout_s=30) as direct,
        ):
            assert np.array_equal(
                client.infer("iris_clf", IRIS_X), direct.infer("iris_clf", IRIS_X)
            )
        proc.send_signal(sig)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [name for name, (_, pid) in children.items() if _alive(pid)]


def test_cluster_demo_runs_end_to_end(tmp_path):
    env = {**os.environ, "RUNNERFLEET_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "runnerfleet.cluster_demo"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "same predictions: True" in run.stdout
    assert "stopped; nothing left running" in run.stdout
    accuracy = re.search(r"accuracy: iris_clf ([\d.]+), digits_mlp ([\d.]+)", run.stdout)
    assert accuracy
    assert float(accuracy[1]) > 0.9
    assert float(accuracy[2]) > 0.9
