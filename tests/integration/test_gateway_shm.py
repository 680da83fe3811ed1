"""System shared memory through the gateway: mirrored to every worker, replayed on rejoin."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from multiprocessing import shared_memory

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.gateway_helpers import seed_store, start_workers
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _status(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=10)
    return set(reply.regions)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("gw-shm-store")
    tags = seed_store(home)
    workers = start_workers(2, home, [tags["echo"]])
    gateway = None
    state = {"home": home, "tag": tags["echo"], "workers": workers}
    try:
        gateway = start_gateway([w.address for w in workers])
        state["gateway"] = gateway
        yield state
    finally:
        if gateway is not None:
            procs.stop(gateway)
        for worker in state["workers"]:
            procs.stop(worker)


@pytest.fixture
def segment() -> Iterator[shared_memory.SharedMemory]:
    seg = shared_memory.SharedMemory(f"/rf-gw-{uuid.uuid4().hex[:12]}", create=True, size=2 * MIB)
    try:
        yield seg
    finally:
        seg.close()
        seg.unlink()


def _echo_via_shm(stub, x: np.ndarray, seg: shared_memory.SharedMemory) -> np.ndarray:
    request = pb.ModelInferRequest(model_name="echo")
    tensor = request.inputs.add(name="input__0", datatype="FP32", shape=x.shape)
    tensor.parameters[codec.SHM_REGION].string_param = "in"
    tensor.parameters[codec.SHM_BYTE_SIZE].int64_param = x.nbytes
    out = request.outputs.add(name="output__0")
    out.parameters[codec.SHM_REGION].string_param = "out"
    out.parameters[codec.SHM_BYTE_SIZE].int64_param = MIB
    seg.buf[: x.nbytes] = x.tobytes()
    response = stub.ModelInfer(request, timeout=30)
    assert response.raw_output_contents[0] == b""
    return np.frombuffer(seg.buf[MIB : MIB + x.nbytes], np.float32).reshape(x.shape).copy()


def test_registration_reaches_every_worker_and_a_rejoining_one(cluster, segment) -> None:
    gateway, workers = cluster["gateway"], cluster["workers"]
    key = "/" + segment.name.lstrip("/")
    with grpc.insecure_channel(gateway.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest())
        for name, offset in (("in", 0), ("out", MIB)):
            stub.SystemSharedMemoryRegister(
                pb.SystemSharedMemoryRegisterRequest(
                    name=name, key=key, offset=offset, byte_size=MIB
                )
            )
        assert set(stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest()).regions) == {
            "in",
            "out",
        }
        for worker in workers:
            assert _status(worker.address) == {"in", "out"}
        for i in range(6):  # both workers serve some of them
            x = np.full((4, 64), i, np.float32)
            np.testing.assert_array_equal(_echo_via_shm(stub, x, segment), x)

        # a worker that restarts on its address gets the registrations replayed
        old = workers[1]
        port = old.port
        assert procs.stop(old) == 0
        new = procs.start_worker(cluster["tag"], cluster["home"], port=port)
        cluster["workers"][1] = new
        procs.wait_serving(new.address)
        deadline_s = time.monotonic() + 30
        while _status(new.address) != {"in", "out"}:  # the gateway replays on its SERVING
            assert time.monotonic() < deadline_s, "registrations were not replayed"
            time.sleep(0.05)
        assert procs.stop(workers[0]) == 0  # only the new worker is left to serve
        x = np.full((2, 8), 7.0, np.float32)
        np.testing.assert_array_equal(_echo_via_shm(stub, x, segment), x)

        stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="in"))
        assert _status(new.address) == {"out"}


def test_refused_registration_is_rolled_back(cluster, segment) -> None:
    gateway = cluster["gateway"]
    key = "/" + segment.name.lstrip("/")
    with grpc.insecure_channel(gateway.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SystemSharedMemoryRegister(
                pb.SystemSharedMemoryRegisterRequest(name="big", key=key, byte_size=64 * MIB)
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "exceeds" in info.value.details()
        assert "worker" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name="big"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as info:
            stub.CudaSharedMemoryStatus(pb.CudaSharedMemoryStatusRequest())
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for worker in cluster["workers"]:
        if worker.proc.poll() is None:
            assert "big" not in _status(worker.address)
