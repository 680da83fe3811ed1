"""A hung worker (SIGSTOP) under 32-way load with 2 s deadlines: no request fails (issue 10, 2).

Health checks with a deadline take it out within about a second, its calls in flight go to the
other replica, forwards past the model's p95 are hedged; after SIGCONT it serves again.
"""

from __future__ import annotations

import os

import pytest

from bench.chaos_resilience import hung_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

STOP_S = float(os.environ.get("RUNNERFLEET_CHAOS_STOP_S", "5"))


def test_sigstop_of_one_worker_fails_no_request_and_it_serves_again(chaos_store):
    counts = hung_worker(chaos_store, STOP_S, clients=32, deadline_s=2.0)
    assert counts.failed == 0, counts.failures
    assert counts.wrong == 0
    assert counts.ok > 600
    assert counts.serve_again_s is not None  # routed to again after SIGCONT (bounded wait)
    assert counts.extra["ejections"] >= 1  # shown in runnerfleet_gateway_ejections_total
