"""Two gateways, clients given both addresses: restarting either (SIGTERM drain, SIGKILL) fails
no request, because runnerfleet.client fails over to the other."""

from __future__ import annotations

import pytest

from bench.chaos_resilience import gateway_restart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_gateway_restarts_with_two_gateways_fail_no_request(chaos_store):
    counts = gateway_restart(chaos_store, clients=16, deadline_s=2.0)
    assert counts.failed == 0, counts.failures
    assert counts.wrong == 0
    assert counts.ok >= 1000
