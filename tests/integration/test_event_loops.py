"""Both processes serve alike on either event loop: uvloop (the default here) and asyncio's own."""

from __future__ import annotations

import numpy as np
import pytest

from runnerfleet.client import Client
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_gateway_and_worker_answer_on_the_chosen_loop(worker_store, monkeypatch, loop) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("RUNNERFLEET_HOME", str(worker_store))
    import store

    want = np.asarray(store.get("iris_clf").load_runnable().methods["predict"](X))
    worker = procs.start_worker("iris_clf", worker_store, event_loop=loop)
    gateway = None
    try:
        procs.wait_serving(worker.address, 60)
        gateway = start_gateway([worker.address], event_loop=loop)
        with Client(gateway.address, timeout_s=30) as client:
            for _ in range(20):
                np.testing.assert_array_equal(client.infer("iris_clf", X), want)
        # each process says which loop it runs on, in its listening line
        assert f"loop={loop}" in worker.log
        assert f"loop={loop}" in gateway.log
    finally:
        if gateway is not None:
            assert procs.stop(gateway) == 0, gateway.log[-3000:]
        assert procs.stop(worker) == 0, worker.log[-3000:]
