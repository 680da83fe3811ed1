"""System shared memory: the region registry's bounds checks and the codec's shm path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from multiprocessing import shared_memory

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, NotFound
from protos.shm import SharedMemoryRegistry


@pytest.fixture
def segment() -> Iterator[shared_memory.SharedMemory]:
    shm = shared_memory.SharedMemory(f"/rf-test-{uuid.uuid4().hex[:12]}", create=True, size=4096)
    try:
        yield shm
    finally:
        shm.close()
        shm.unlink()


@pytest.fixture
def registry() -> Iterator[SharedMemoryRegistry]:
    reg = SharedMemoryRegistry()
    yield reg
    reg.close()


def _key(segment: shared_memory.SharedMemory) -> str:
    return "/" + segment.name.lstrip("/")


def _shm_input(name: str, region: str, arr: np.ndarray, offset: int = 0) -> object:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=codec.numpy_to_datatype(arr.dtype), shape=arr.shape
    )
    tensor.parameters[codec.SHM_REGION].string_param = region
    tensor.parameters[codec.SHM_BYTE_SIZE].int64_param = arr.nbytes
    if offset:
        tensor.parameters[codec.SHM_OFFSET].uint64_param = offset
    return tensor


def test_register_status_unregister(segment, registry):
    registry.register("in0", _key(segment), 128, 1024)
    (status,) = registry.status("in0")
    assert (status.name, status.key, status.offset, status.byte_size) == (
        "in0",
        _key(segment),
        128,
        1024,
    )
    with pytest.raises(InvalidArgument, match="already registered"):
        registry.register("in0", _key(segment), 0, 16)
    registry.unregister("in0")
    assert registry.status() == []
    with pytest.raises(NotFound, match="not registered"):
        registry.unregister("in0")


def test_register_refuses_bad_objects(segment, registry):
    with pytest.raises(NotFound, match="does not exist"):
        registry.register("x", "/rf-no-such-object", 0, 16)
    with pytest.raises(InvalidArgument, match="exceeds"):
        registry.register("x", _key(segment), 4000, 200)
    for key in ("/../etc/passwd", "/a/b", "/.."):
        with pytest.raises(InvalidArgument, match="POSIX shared-memory name"):
            registry.register("x", key, 0, 16)
    with pytest.raises(InvalidArgument, match="byte_size"):
        registry.register("x", _key(segment), 0, 0)
    assert len(registry) == 0


def test_input_read_zero_copy_and_read_only(segment, registry):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    segment.buf[64 : 64 + arr.nbytes] = arr.tobytes()
    registry.register("in0", _key(segment), 0, 4096)
    request = pb.ModelInferRequest(model_name="m", inputs=[_shm_input("x", "in0", arr, 64)])
    (out,) = codec.decode_request_inputs(request, registry)
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable
    segment.buf[64:68] = np.float32(99).tobytes()  # the array is a view over the mapping
    assert out[0, 0] == 99


def test_mixed_shm_and_raw_inputs(segment, registry):
    a = np.ones((2, 2), dtype=np.int32)
    b = np.arange(3, dtype=np.int64)
    segment.buf[: a.nbytes] = a.tobytes()
    registry.register("r", _key(segment), 0, a.nbytes)
    plain, raw = codec.encode_input("b", b)
    request = pb.ModelInferRequest(
        model_name="m", inputs=[_shm_input("a", "r", a), plain], raw_input_contents=[raw]
    )
    got_a, got_b = codec.decode_request_inputs(request, registry)
    np.testing.assert_array_equal(got_a, a)
    np.testing.assert_array_equal(got_b, b)


@pytest.mark.parametrize(
    ("offset", "byte_size", "error", "match"),
    [
        (0, 4096, InvalidArgument, "needs 48 bytes"),  # byte size disagrees with the shape
        (90, 48, InvalidArgument, "run past the end"),  # region is 128 bytes
    ],
)
def test_input_out_of_range(segment, registry, offset, byte_size, error, match):
    registry.register("r", _key(segment), 0, 128)
    arr = np.zeros((3, 4), dtype=np.float32)
    tensor = _shm_input("x", "r", arr, offset)
    tensor.parameters[codec.SHM_BYTE_SIZE].int64_param = byte_size
    with pytest.raises(error, match=match):
        codec.decode_request_inputs(pb.ModelInferRequest(model_name="m", inputs=[tensor]), registry)


def test_unknown_region_and_no_registry(registry):
    arr = np.zeros(4, dtype=np.float32)
    request = pb.ModelInferRequest(model_name="m", inputs=[_shm_input("x", "nope", arr)])
    with pytest.raises(NotFound, match="'nope' is not registered"):
        codec.decode_request_inputs(request, registry)
    with pytest.raises(InvalidArgument, match="no shared memory"):
        codec.decode_request_inputs(request, None)


def test_missing_byte_size_and_bad_types(registry):
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1])
    tensor.parameters[codec.SHM_REGION].string_param = "r"
    request = pb.ModelInferRequest(model_name="m", inputs=[tensor])
    with pytest.raises(InvalidArgument, match="shared_memory_byte_size"):
        codec.decode_request_inputs(request, registry)
    request.inputs[0].parameters[codec.SHM_BYTE_SIZE].string_param = "4"
    with pytest.raises(InvalidArgument, match="must be an integer"):
        codec.decode_request_inputs(request, registry)


def test_truncated_object_is_refused_not_read(registry):
    name = f"/rf-test-{uuid.uuid4().hex[:12]}"
    seg = shared_memory.SharedMemory(name, create=True, size=8192)
    try:
        registry.register("r", name, 0, 8192)
        os.truncate(os.path.join("/dev/shm", name.lstrip("/")), 1024)
        arr = np.zeros(1024, dtype=np.float32)  # 4096 bytes, now past the object's end
        request = pb.ModelInferRequest(model_name="m", inputs=[_shm_input("x", "r", arr)])
        with pytest.raises(InvalidArgument, match="truncated"):
            codec.decode_request_inputs(request, registry)
    finally:
        seg.close()
        seg.unlink()


def test_unregister_while_in_use_keeps_the_view_valid(segment, registry):
    arr = np.arange(8, dtype=np.float64)
    segment.buf[: arr.nbytes] = arr.tobytes()
    registry.register("r", _key(segment), 0, arr.nbytes)
    request = pb.ModelInferRequest(model_name="m", inputs=[_shm_input("x", "r", arr)])
    (view,) = codec.decode_request_inputs(request, registry)
    region = registry.get("r")
    registry.unregister("r")
    np.testing.assert_array_equal(view, arr)  # still mapped while the request holds it
    with pytest.raises(NotFound, match="unregistered while the request"):
        region.read(0, 8)
    with pytest.raises(NotFound, match="not registered"):
        codec.decode_request_inputs(request, registry)


def _shm_output_request(region: str, byte_size: int, offset: int = 0) -> object:
    request = pb.ModelInferRequest(model_name="m")
    out = request.outputs.add(name="output__0")
    out.parameters[codec.SHM_REGION].string_param = region
    out.parameters[codec.SHM_BYTE_SIZE].int64_param = byte_size
    if offset:
        out.parameters[codec.SHM_OFFSET].int64_param = offset
    return request


def test_output_written_into_region(segment, registry):
    registry.register("out", _key(segment), 256, 1024)
    result = np.arange(6, dtype=np.float32).reshape(2, 3)
    response = codec.encode_response(
        _shm_output_request("out", 1024, 16), [result], ["output__0"], registry
    )
    (tensor,) = response.outputs
    assert list(tensor.shape) == [2, 3]
    assert tensor.datatype == "FP32"
    assert tensor.parameters[codec.SHM_REGION].string_param == "out"
    assert tensor.parameters[codec.SHM_BYTE_SIZE].int64_param == result.nbytes
    assert list(response.raw_output_contents) == [b""]
    written = np.frombuffer(segment.buf[272 : 272 + result.nbytes], dtype=np.float32)
    np.testing.assert_array_equal(written.reshape(2, 3), result)
    with pytest.raises(InvalidArgument, match="shared-memory region"):
        codec.decode_response_outputs(response)


def test_output_region_too_small(segment, registry):
    registry.register("out", _key(segment), 0, 16)
    result = np.zeros(8, dtype=np.float32)  # 32 bytes
    with pytest.raises(InvalidArgument, match="needs 32 bytes"):
        codec.encode_response(_shm_output_request("out", 16), [result], ["output__0"], registry)
    with pytest.raises(InvalidArgument, match="run past the end"):
        codec.encode_response(_shm_output_request("out", 64), [result], ["output__0"], registry)


def test_output_into_a_replaced_object_is_refused(registry):
    name = f"/rf-test-{uuid.uuid4().hex[:12]}"
    first = shared_memory.SharedMemory(name, create=True, size=4096)
    registry.register("out", name, 0, 4096)  # opened read-only: nothing written yet
    first.close()
    first.unlink()
    second = shared_memory.SharedMemory(name, create=True, size=4096)  # same name, new object
    try:
        with pytest.raises(InvalidArgument, match="was replaced"):
            codec.encode_response(
                _shm_output_request("out", 4096), [np.ones(4, np.float32)], ["output__0"], registry
            )
        assert bytes(second.buf[:16]) == b"\0" * 16
    finally:
        second.close()
        second.unlink()


def test_non_contiguous_and_bytes_outputs(segment, registry):
    registry.register("out", _key(segment), 0, 4096)
    result = np.arange(12, dtype=np.int16).reshape(3, 4).T  # Fortran order
    codec.encode_response(_shm_output_request("out", 4096), [result], ["output__0"], registry)
    got = np.frombuffer(segment.buf[: result.nbytes], dtype=np.int16).reshape(4, 3)
    np.testing.assert_array_equal(got, result)
    words = np.array([b"hi", b"hello"], dtype=object)
    codec.encode_response(_shm_output_request("out", 4096), [words], ["output__0"], registry)
    assert bytes(segment.buf[:15]) == b"\x02\x00\x00\x00hi\x05\x00\x00\x00hello"


FIXED = [d for d in codec.DATATYPES if d != "BYTES"]


@st.composite
def _arrays(draw):
    dtype = codec.DATATYPE_TO_NUMPY[draw(st.sampled_from(FIXED))]
    if draw(st.booleans()) and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    elements = st.floats(width=8 * dtype.itemsize, allow_nan=False) if dtype.kind == "f" else None
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return arr.T if draw(st.booleans()) else arr  # Fortran order too


@given(arrays=st.lists(_arrays(), min_size=1, max_size=3), offset=st.integers(0, 64))
@settings(max_examples=200, deadline=None)
def test_round_trip_through_a_region(arrays, offset) -> None:
    """Any fixed-width array written as an output reads back equal as an input."""
    name = f"/rf-prop-{uuid.uuid4().hex[:12]}"
    seg = shared_memory.SharedMemory(name, create=True, size=8192)
    registry = SharedMemoryRegistry()
    try:
        registry.register("r", name, 0, 8192)
        names = [f"output__{i}" for i in range(len(arrays))]
        request = pb.ModelInferRequest(model_name="m")
        starts = []
        start = offset
        for out_name, arr in zip(names, arrays, strict=True):
            out = request.outputs.add(name=out_name)
            out.parameters[codec.SHM_REGION].string_param = "r"
            out.parameters[codec.SHM_OFFSET].int64_param = start
            out.parameters[codec.SHM_BYTE_SIZE].int64_param = arr.nbytes
            starts.append(start)
            start += arr.nbytes
        response = codec.encode_response(request, arrays, names, registry)
        back = pb.ModelInferRequest(model_name="m")
        for tensor, begin in zip(response.outputs, starts, strict=True):
            given_in = back.inputs.add(name=tensor.name, datatype=tensor.datatype)
            given_in.shape.extend(tensor.shape)
            given_in.parameters[codec.SHM_REGION].string_param = "r"
            given_in.parameters[codec.SHM_OFFSET].int64_param = begin
            given_in.parameters[codec.SHM_BYTE_SIZE].int64_param = tensor.parameters[
                codec.SHM_BYTE_SIZE
            ].int64_param
        decoded = codec.decode_request_inputs(back, registry)
        for got, want in zip(decoded, arrays, strict=True):
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)
        del decoded
    finally:
        registry.close()
        seg.close()
        seg.unlink()
