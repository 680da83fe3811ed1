"""Big tensors cross gateway -> worker through shared memory, invisibly to the client."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.gateway_helpers import metric_value, scrape, seed_store, start_workers
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
_HOP = "rf-hop-"
_BIG = [("grpc.max_receive_message_length", 64 * MIB)]


def _regions(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=10)
    return set(reply.regions)


def _echo(
    stub: pb_grpc.GRPCInferenceServiceStub, x: np.ndarray, timeout_s: float = 30
) -> np.ndarray:
    request = codec.encode_request("echo", [x])
    response = stub.ModelInfer(request, timeout=timeout_s)
    (out,) = codec.decode_response_outputs(response)
    assert not any(codec.SHM_REGION in t.parameters for t in response.outputs)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("gw-hop-store")
    tags = seed_store(home)
    workers = start_workers(1, home, [tags["echo"]])
    state: dict = {"workers": workers}
    try:
        state["gateway"] = start_gateway([w.address for w in workers])
        env = dict(os.environ, RUNNERFLEET_FORWARD_SHM_MIN_BYTES="0")
        state["plain"] = start_gateway([w.address for w in workers], env=env)
        yield state
    finally:
        for name in ("gateway", "plain"):
            if name in state:
                procs.stop(state[name])
        for worker in workers:
            procs.stop(worker)


def test_big_tensors_take_the_hop_and_come_back_exact(cluster) -> None:
    gateway, worker = cluster["gateway"], cluster["workers"][0]
    rng = np.random.default_rng(7)
    wrong: list[int] = []
    failed: list[str] = []

    def client(seed: int) -> None:
        local = np.random.default_rng(seed)
        with grpc.insecure_channel(gateway.address, options=_BIG) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(6):
                rows = int(local.integers(256, 1200))
                x = local.standard_normal((rows, 1024)).astype(np.float32)  # 1-4.7 MiB
                try:
                    if not np.array_equal(_echo(stub, x), x):
                        wrong.append(seed)
                except grpc.RpcError as exc:
                    failed.append(f"{exc.code()}: {exc.details()}")

    threads = [
        threading.Thread(target=client, args=(int(rng.integers(1 << 30)),)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failed == []
    assert wrong == []
    hop_regions = {r for r in _regions(worker.address) if r.startswith(_HOP)}
    assert hop_regions, "the worker never saw a hop slot"
    assert not any(r.startswith(_HOP) for r in _regions(gateway.address))
    hops = metric_value(
        scrape(gateway.metrics_port),
        "runnerfleet_gateway_shm_hop_requests_total",
        worker=worker.address,
    )
    assert hops is not None
    assert hops >= 36


def test_small_tensors_and_a_disabled_hop_stay_on_grpc(cluster) -> None:
    worker = cluster["workers"][0]
    before = _regions(worker.address)
    with grpc.insecure_channel(cluster["plain"].address, options=_BIG) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        big = np.arange(2 * MIB // 4, dtype=np.float32).reshape(-1, 1024)
        assert np.array_equal(_echo(stub, big), big)
    with grpc.insecure_channel(cluster["gateway"].address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        small = np.arange(64, dtype=np.float32).reshape(4, 16)
        assert np.array_equal(_echo(stub, small), small)
    assert _regions(worker.address) == before


def test_slots_unregistered_behind_its_back_are_recreated(cluster) -> None:
    gateway, worker = cluster["gateway"], cluster["workers"][0]
    with grpc.insecure_channel(gateway.address, options=_BIG) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        x = np.full((512, 1024), 3.5, np.float32)
        assert np.array_equal(_echo(stub, x), x)
        with grpc.insecure_channel(worker.address) as direct:  # someone clears the worker
            pb_grpc.GRPCInferenceServiceStub(direct).SystemSharedMemoryUnregister(
                pb.SystemSharedMemoryUnregisterRequest(), timeout=10
            )
        for i in range(4):
            y = np.full((512 + i, 1024), float(i), np.float32)
            assert np.array_equal(_echo(stub, y), y)
    assert any(r.startswith(_HOP) for r in _regions(worker.address))


def test_unregister_all_at_the_gateway_keeps_the_hop(cluster) -> None:
    gateway, worker = cluster["gateway"], cluster["workers"][0]
    with grpc.insecure_channel(gateway.address, options=_BIG) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        x = np.ones((300, 1024), np.float32)
        assert np.array_equal(_echo(stub, x), x)
        hop_before = {r for r in _regions(worker.address) if r.startswith(_HOP)}
        stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=10)
        assert {r for r in _regions(worker.address) if r.startswith(_HOP)} == hop_before


def test_cancelled_and_late_requests_never_corrupt_later_answers(cluster) -> None:
    gateway = cluster["gateway"]
    with grpc.insecure_channel(gateway.address, options=_BIG) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        codes = set()
        for i in range(40):  # deadlines about one answer long: some end mid-forward
            x = np.full((1024, 1024), float(i), np.float32)
            try:
                _echo(stub, x, timeout_s=0.005 + 0.001 * i)
            except grpc.RpcError as exc:
                codes.add(exc.code())
        late = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
        assert codes <= {*late, grpc.StatusCode.RESOURCE_EXHAUSTED}  # refused by estimate
        for i in range(10):
            y = np.full((1024, 1024), 100.0 + i, np.float32)
            assert np.array_equal(_echo(stub, y), y)
