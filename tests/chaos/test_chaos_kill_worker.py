"""SIGKILL and SIGTERM of one of two workers under 32-way load: 0 failed requests; the worker
restarted on its port is routed to again."""

from __future__ import annotations

import signal

import pytest

from bench.chaos_resilience import worker_signal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_worker_death_under_load_fails_no_request(chaos_store, sig):
    counts = worker_signal(chaos_store, sig, clients=32, deadline_s=2.0)
    assert counts.failed == 0, counts.failures
    assert counts.wrong == 0
    assert counts.serve_again_s is not None
