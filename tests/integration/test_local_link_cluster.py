"""The local link over real processes: offered, used, refused where it would weaken auth."""

from __future__ import annotations

import os
import threading

import grpc
import numpy as np
import pytest

from protos import codec, internal_pb2, internal_pb2_grpc
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.gateway_helpers import metric_value, scrape, seed_store, start_workers
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = pytest.mark.integration


def _offered(address: str, metadata: tuple = ()) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = internal_pb2_grpc.WorkerInternalStub(channel)
        reply = stub.DescribeModels(
            internal_pb2.DescribeModelsRequest(), timeout=10, metadata=metadata
        )
    return reply.local_socket


def _connections(path: str) -> int:
    """Sockets bound to ``path`` (the listener and each accepted connection)."""
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(" " + path))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple:
    home = tmp_path_factory.mktemp("link-store")
    return home, seed_store(home)


def test_a_local_gateway_forwards_over_the_workers_socket(store) -> None:
    home, tags = store
    (worker,) = start_workers(1, home, [tags["echo"]])
    gateways = []
    try:
        path = _offered(worker.address)
        assert path
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert _connections(path) == 1  # listening, nobody connected yet
        gateways.append(start_gateway([worker.address]))
        env = dict(os.environ, RUNNERFLEET_FORWARD_LOCAL_LINK="0")
        gateways.append(start_gateway([worker.address], env=env))
        wrong: list[str] = []

        def client(address: str, seed: int) -> None:
            rng = np.random.default_rng(seed)
            with grpc.insecure_channel(address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for _ in range(50):
                    x = rng.standard_normal((int(rng.integers(1, 9)), 16)).astype(np.float32)
                    response = stub.ModelInfer(codec.encode_request("echo", [x]), timeout=10)
                    (out,) = codec.decode_response_outputs(response)
                    if not np.array_equal(out, x):
                        wrong.append(address)

        threads = [
            threading.Thread(target=client, args=(g.address, i)) for i, g in enumerate(gateways * 4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert wrong == []
        assert _connections(path) == 2  # the first gateway's connection, not the second's
        linked, plain = (scrape(g.metrics_port) for g in gateways)
        name = "runnerfleet_gateway_forward_calls_total"
        labels = {"worker": worker.address}
        assert (metric_value(linked, name, **labels, transport="local_link") or 0) > 0
        assert (metric_value(plain, name, **labels, transport="local_link") or 0) == 0
        assert (metric_value(plain, name, **labels, transport="grpc") or 0) > 0
    finally:
        for g in gateways:
            procs.stop(g)
        procs.stop(worker)
    assert not os.path.exists(path)  # removed at exit


def test_a_worker_with_credentials_offers_no_socket(store, tmp_path) -> None:
    home, tags = store
    token = tmp_path / "inference.token"
    token.write_text("link-test-inference-token\n")
    control = tmp_path / "control.token"
    control.write_text("link-test-control-token\n")
    worker = procs.start_worker(
        [tags["echo"]], home, auth_token_file=token, control_token_file=control
    )
    try:
        procs.wait_serving(worker.address)
        metadata = (("authorization", "Bearer link-test-inference-token"),)
        assert _offered(worker.address, metadata) == ""
    finally:
        procs.stop(worker)
