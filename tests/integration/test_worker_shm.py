"""System shared memory against a real worker: register, infer through regions, bad regions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import shared_memory

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def segment() -> Iterator[shared_memory.SharedMemory]:
    seg = shared_memory.SharedMemory(f"/rf-it-{uuid.uuid4().hex[:12]}", create=True, size=2 * MIB)
    try:
        yield seg
    finally:
        seg.close()
        seg.unlink()


def _key(seg: shared_memory.SharedMemory) -> str:
    return "/" + seg.name.lstrip("/")


@pytest.fixture
def regions(stub) -> Iterator[None]:
    stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name=""))
    yield
    stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name=""))


def _register(stub, name: str, key: str, offset: int, byte_size: int) -> None:
    stub.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name=name, key=key, offset=offset, byte_size=byte_size)
    )


def _shm_request(x: np.ndarray, in_region: str, out_region: str, out_bytes: int, offset=0):
    request = pb.ModelInferRequest(model_name="echo")
    tensor = request.inputs.add(name="input__0", datatype="FP32", shape=x.shape)
    tensor.parameters[codec.SHM_REGION].string_param = in_region
    tensor.parameters[codec.SHM_BYTE_SIZE].int64_param = x.nbytes
    if offset:
        tensor.parameters[codec.SHM_OFFSET].int64_param = offset
    out = request.outputs.add(name="output__0")
    out.parameters[codec.SHM_REGION].string_param = out_region
    out.parameters[codec.SHM_BYTE_SIZE].int64_param = out_bytes
    return request


def test_server_metadata_advertises_system_shared_memory(stub) -> None:
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert "system_shared_memory" in meta.extensions


def test_infer_through_regions_and_status(stub, segment, regions) -> None:
    x = np.arange(64 * 1024, dtype=np.float32).reshape(64, 1024)  # 256 KiB
    segment.buf[: x.nbytes] = x.tobytes()
    _register(stub, "in", _key(segment), 0, x.nbytes)
    _register(stub, "out", _key(segment), MIB, MIB)
    status = stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(status.regions) == {"in", "out"}
    assert status.regions["out"].offset == MIB
    assert status.regions["out"].key == _key(segment)
    response = stub.ModelInfer(_shm_request(x, "in", "out", MIB))
    (tensor,) = response.outputs
    assert list(tensor.shape) == [64, 1024]
    assert tensor.parameters[codec.SHM_BYTE_SIZE].int64_param == x.nbytes
    assert response.raw_output_contents[0] == b""
    got = np.frombuffer(segment.buf[MIB : MIB + x.nbytes], dtype=np.float32).reshape(x.shape)
    np.testing.assert_array_equal(got, x)
    stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="in"))
    status = stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(status.regions) == {"out"}


def _code(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return info.value.code(), info.value.details()


def test_bad_regions_are_clear_errors_and_good_requests_continue(stub, segment, regions) -> None:
    x = np.ones((4, 256), dtype=np.float32)  # 4 KiB
    segment.buf[: x.nbytes] = x.tobytes()
    _register(stub, "small", _key(segment), 0, 1024)
    _register(stub, "in", _key(segment), 0, x.nbytes)
    _register(stub, "out", _key(segment), MIB, 64 * 1024)
    cases = [
        (_shm_request(x, "small", "out", 64 * 1024), grpc.StatusCode.INVALID_ARGUMENT, "past"),
        (_shm_request(x, "nope", "out", 64 * 1024), grpc.StatusCode.NOT_FOUND, "'nope'"),
        (_shm_request(x, "in", "out", 1024), grpc.StatusCode.INVALID_ARGUMENT, "needs 4096"),
        (_shm_request(x, "in", "out", 64 * 1024, 8), grpc.StatusCode.INVALID_ARGUMENT, "past"),
    ]
    for request, want, needle in cases:
        code, details = _code(stub.ModelInfer, request)
        assert code == want, (code, details)
        assert needle in details, (code, details)
    register = stub.SystemSharedMemoryRegister
    for req, want in [
        (pb.SystemSharedMemoryRegisterRequest(name="x", key="/rf-none", byte_size=8), "NOT_FOUND"),
        (
            pb.SystemSharedMemoryRegisterRequest(name="x", key=_key(segment), byte_size=4 * MIB),
            "INVALID_ARGUMENT",
        ),
        (pb.SystemSharedMemoryRegisterRequest(name="x", key="/../etc", byte_size=8), "INVALID"),
        (
            pb.SystemSharedMemoryRegisterRequest(name="in", key=_key(segment), byte_size=8),
            "INVALID_ARGUMENT",
        ),
    ]:
        code, details = _code(register, req)
        assert code.name.startswith(want), (code, details)
    code, _ = _code(
        stub.SystemSharedMemoryUnregister, pb.SystemSharedMemoryUnregisterRequest(name="nope")
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = _code(stub.CudaSharedMemoryRegister, pb.CudaSharedMemoryRegisterRequest())
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "CUDA" in details

    # bad shm requests and good byte requests at once: the good ones are all right
    good = codec.encode_request("echo", [x * 3])

    def call(i: int):
        if i % 3 == 0:
            with pytest.raises(grpc.RpcError):
                stub.ModelInfer(cases[i % len(cases)][0])
            return None
        return codec.decode_response_outputs(stub.ModelInfer(good))[0]

    with ThreadPoolExecutor(8) as pool:
        outs = [o for o in pool.map(call, range(48)) if o is not None]
    assert len(outs) == 32
    for out in outs:
        np.testing.assert_array_equal(out, x * 3)
