"""BentoML 1.x's quickstart, pytorch and custom-runner examples: init_local and `cluster up`.

The service files under ``bentoml_examples/`` are BentoML's, with ``runnerfleet`` in place of
``bentoml``; ``train.py`` runs as a script (its torch class lives in ``__main__``). Each example
runs once in this process with ``init_local`` and once through ``runnerfleet cluster up
--service`` (a real gateway and a real worker, port 0, health SERVING); the answers must match.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from runnerfleet.client import Client
from tests.integration.gateway_helpers import IRIS_X, metric_value, scrape
from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

EXAMPLES = "tests.integration.bentoml_examples"
LINE = re.compile(r"^\s+(\S+)\s+grpc (\S+)\s+metrics http://[^:]+:(\d+)/metrics\s+pid (\d+)")


@pytest.fixture(scope="module")
def example_home(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A store with the examples' models, saved by ``train.py`` run as ``__main__``."""
    home = tmp_path_factory.mktemp("bentoml-examples")
    env = {**os.environ, "RUNNERFLEET_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    script = REPO_ROOT / "tests" / "integration" / "bentoml_examples" / "train.py"
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Model saved:") == 2, done.stdout
    return home


def _local(module: str, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import the service file afresh against ``home`` and init_local its runners."""
    monkeypatch.setenv("RUNNERFLEET_HOME", str(home))
    sys.modules.pop(f"{EXAMPLES}.{module}", None)
    loaded = importlib.import_module(f"{EXAMPLES}.{module}")
    for runner in loaded.svc.runners:
        runner.init_local(quiet=True)
    return loaded


@contextlib.contextmanager
def cluster_up(service: str, home: pathlib.Path) -> Iterator[dict[str, tuple[str, int]]]:
    """`runnerfleet cluster up --service` with one worker; {role: (grpc address, metrics port)}."""
    env = {**os.environ, "RUNNERFLEET_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-c", "from runnerfleet.cli import main; main()", "cluster", "up",
            "--workers", "1", "--service", f"{EXAMPLES}.{service}:svc", "--port", "0",
            "--metrics-port", "0", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    children: dict[str, tuple[str, int]] = {}
    try:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode()
            if match := LINE.match(line):
                children[match[1]] = (match[2], int(match[3]))
            if "Ctrl-C stops everything" in line:
                break
        assert set(children) == {"gateway", "worker-0"}, f"cluster did not start: {children}"
        yield children
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_quickstart(example_home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = _local("quickstart", example_home, monkeypatch)
    expected = local.classify(IRIS_X)
    np.testing.assert_array_equal(expected, [0, 2, 1])
    with (
        cluster_up("quickstart", example_home) as children,
        Client(children["gateway"][0], timeout_s=60) as client,
    ):
        np.testing.assert_array_equal(client.infer("classify", IRIS_X), expected)


def test_pytorch_example(example_home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = load_digits(return_X_y=True)
    images = (x[:64] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    local = _local("pytorch_mnist", example_home, monkeypatch)
    expected = asyncio.run(local.predict_ndarray(images))
    assert expected.dtype == np.int64
    assert (expected == y[:64]).mean() > 0.9
    np.testing.assert_array_equal(local.predict_sync(images), expected)
    with (
        cluster_up("pytorch_mnist", example_home) as children,
        Client(children["gateway"][0], timeout_s=60) as client,
    ):
        np.testing.assert_array_equal(client.infer("predict_ndarray", images), expected)
        np.testing.assert_array_equal(client.infer("predict_sync", images), expected)


def test_custom_runner(example_home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = np.random.default_rng(0).random((20, 3), dtype=np.float32)
    local = _local("custom_runner", example_home, monkeypatch)
    expected = local.analysis(scores)
    np.testing.assert_array_equal(expected, (scores.mean(axis=1) > 0.5).astype(np.int64))
    with cluster_up("custom_runner", example_home) as children:
        with Client(children["gateway"][0], timeout_s=60) as client:
            np.testing.assert_array_equal(client.infer("analysis", scores), expected)
            config = client.model_config("polarity_runner").config
        # method_configs={"is_positive": {"max_batch_size": 8}}, max_latency_ms=2000 (runner)
        assert config.max_batch_size == 8
        assert config.dynamic_batching.max_queue_delay_microseconds == 2_000_000
        text = scrape(children["worker-0"][1])
        labels = {"model": "polarity_runner", "method": "is_positive"}
        batches = metric_value(text, "runnerfleet_worker_batch_size_rows_count", **labels)
        at_most_8 = metric_value(
            text, "runnerfleet_worker_batch_size_rows_bucket", le="8.0", **labels
        )
        assert batches is not None
        assert batches >= 3
        assert at_most_8 == batches
        positive = int(expected.sum())  # runnerfleet.metrics from the runnable, on the worker
        custom = "polarity_rows_scored_total"
        assert metric_value(text, custom, outcome="positive") == positive
        assert metric_value(text, custom, outcome="negative") == len(expected) - positive
