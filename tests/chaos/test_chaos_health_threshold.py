"""Health-check ejection needs N late answers in a row (Envoy's `unhealthy_threshold`).

Two real workers behind a real gateway whose health checks run every 0.2 s with a 0.4 s
deadline and `health_check_unhealthy_threshold` 3. A worker SIGSTOPped for 0.45 s misses at
most the checks sent in the 0.05 s before it could answer again, plus one sent just before
the stop (2 < 3): it stays in rotation, `ejections_total{reason="health"}` stays 0, and no
request fails. Stopped for 2 s it misses about 8 in a row: it is taken out (the counter reads
1) and comes back after SIGCONT. Counts asserted, never timings.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from bench.chaos_resilience import (
    IRIS_MODEL,
    IRIS_X,
    ClosedLoop,
    metric,
    running_cluster,
    wait_metric,
)
from tests.support.procs import wait_serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CHECKS = {
    "RUNNERFLEET_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RUNNERFLEET_HEALTH_CHECK_TIMEOUT_S": "0.4",
    "RUNNERFLEET_HEALTH_CHECK_UNHEALTHY_THRESHOLD": "3",
    # outlier ejection (forwards, not checks) must not be what takes it out in this test
    "RUNNERFLEET_OUTLIER_CONSECUTIVE_SLOW": "1000",
    "RUNNERFLEET_OUTLIER_CONSECUTIVE_FAULTS": "1000",
}


def _stall(pid: int, seconds: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_short_stall_is_not_ejected_a_long_one_is(chaos_store) -> None:
    from runnerfleet.client import Client

    with running_cluster(chaos_store) as cluster:
        victim, survivor = cluster.start_worker(), cluster.start_worker()
        for worker in (victim, survivor):
            wait_serving(worker.address, 120)
        gateway = cluster.start_gateway([victim.address, survivor.address], **CHECKS)
        wait_serving(gateway.address, 60)
        with Client(survivor.address, timeout_s=30) as direct:
            expected = direct.infer(IRIS_MODEL, IRIS_X)

        def health_ejections() -> float:
            return (
                metric(
                    gateway.metrics_port,
                    "runnerfleet_gateway_ejections_total",
                    worker=victim.address,
                    reason="health",
                )
                or 0.0
            )

        load = ClosedLoop([gateway.address], 4, expected, deadline_s=5.0)
        with load:
            load.wait_for_ok(50)
            for _ in range(3):  # three short stalls, each one late answer at most twice
                _stall(victim.pid, 0.45)
                time.sleep(1.0)
            short_ejections = health_ejections()
            _stall(victim.pid, 2.0)
            wait_metric(
                gateway.metrics_port, "runnerfleet_gateway_worker_up", 1, 30,
                worker=victim.address,
            )  # fmt: skip
            load.wait_for_ok(50)
        long_ejections = health_ejections()

    assert short_ejections == 0, "a stall shorter than the threshold ejected the worker"
    assert long_ejections == 1, long_ejections
    assert load.counts.failed == 0, load.counts.failures
    assert load.counts.wrong == 0
