"""Honest readiness (issue 10, finding 5): gateway health follows its only worker.

The gateway's gRPC health ("" and "inference.GRPCInferenceService") is NOT_SERVING while its
only worker is dead, loading or stopped, and SERVING again when it returns; a Service API's
ModelReady needs every runner model routable; a request sent while no worker can serve waits
(bounded by its deadline) and is answered once the worker is up.
"""

from __future__ import annotations

import os
import signal
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.chaos_resilience import IRIS_X, running_cluster
from runnerfleet.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVICES = ("", "inference.GRPCInferenceService")
SERVICE_APP = "tests.integration.gateway_service_app:svc"
SLOW_LOAD_S = 3.0


def wait_health(address: str, want: str, timeout_s: float = 20.0, service: str = "") -> None:
    """Block until ``address`` reports health ``want`` (Health.Watch pushes changes)."""
    with grpc.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
        )
        seen = []
        try:
            for reply in stream:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
                if seen[-1] == want:
                    return
        except grpc.RpcError as exc:
            raise AssertionError(f"{address} never said {want} (saw {seen}): {exc.code()}") from exc


def assert_health(address: str, want: str, timeout_s: float = 30.0) -> None:
    for service in SERVICES:
        wait_health(address, want, timeout_s=timeout_s, service=service)


@pytest.fixture()
def slow_loading_model(chaos_store, monkeypatch) -> str:
    """A model whose warm-up takes SLOW_LOAD_S, so a worker stays LOADING that long."""
    import store
    from tests.support.models import Slow

    monkeypatch.setenv("RUNNERFLEET_HOME", str(chaos_store))
    sample = np.zeros((1, 4), np.float32)
    sig = {"__call__": {"batchable": True}}
    model = store.save_model("pytorch", "slowload", Slow(SLOW_LOAD_S), signatures=sig,
                             sample_input=sample)  # fmt: skip
    return str(model.tag)


def test_gateway_health_follows_its_only_worker(chaos_store, slow_loading_model):
    with running_cluster(chaos_store) as cluster:
        # dead: the worker's address is known, nothing listens there
        first = cluster.start_worker(models="iris_clf:latest,echo:latest")
        port = first.grpc_port
        cluster.supervisor.stop(first, signal.SIGKILL)
        gateway = cluster.start_gateway(
            [f"127.0.0.1:{port}"], 0, "--service", SERVICE_APP, RUNNERFLEET_ROUTE_WAIT_S="60"
        )
        assert_health(gateway.address, "NOT_SERVING")
        client = Client(gateway.address, timeout_s=60.0, retries=0)
        assert not client.is_model_ready("classify")

        # a request that arrives while no worker serves waits for one (deadline 60 s)
        answers: list[object] = []
        waiting = threading.Thread(target=lambda: answers.append(client.infer("classify", IRIS_X)))
        waiting.start()
        worker = cluster.start_worker(port=port, models="iris_clf:latest,echo:latest")
        assert_health(gateway.address, "SERVING")
        waiting.join(30)
        assert len(answers) == 1 and isinstance(answers[0], np.ndarray)
        assert client.is_model_ready("classify")

        # stopped: health checks with a deadline notice it
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            assert_health(gateway.address, "NOT_SERVING")
            assert not client.is_model_ready("classify")
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        assert_health(gateway.address, "SERVING")

        # dead again, then loading: NOT_SERVING until its model is warm; it hosts neither
        # iris_clf nor echo, so the Service API stays not ready while the gateway serves
        cluster.supervisor.stop(worker, signal.SIGKILL)
        assert_health(gateway.address, "NOT_SERVING")
        loading = cluster.start_worker(port=port, models=slow_loading_model)  # still loading
        for service in SERVICES:  # nothing served while it loads
            with grpc.insecure_channel(gateway.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=5
                )
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        try:
            assert_health(gateway.address, "SERVING", timeout_s=120.0)
        except AssertionError:
            raise AssertionError(f"worker log:\n{loading.log[-3000:]}") from None
        assert client.is_model_ready("slowload")
        assert not client.is_model_ready("classify")  # its runners are not routable
        client.close()
