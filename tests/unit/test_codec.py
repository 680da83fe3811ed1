"""protos/codec.py: round trips for every datatype, awkward arrays, and actionable errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument

FIXED = [name for name in codec.DATATYPES if name != "BYTES"]


def _wire(message):
    """Serialize and parse, as the message would travel."""
    return type(message).FromString(message.SerializeToString())


def _roundtrip_request(arrays, names=None):
    request = _wire(codec.encode_request("m", arrays, input_names=names))
    return request, codec.decode_request_inputs(request)


def _roundtrip_response(arrays):
    names = [f"output__{i}" for i in range(len(arrays))]
    response = _wire(codec.encode_response(pb.ModelInferRequest(), arrays, names))
    return response, codec.decode_response_outputs(response)


def _assert_same(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape
    if expected.dtype.kind in "OSU":
        want = [x.encode() if isinstance(x, str) else bytes(x) for x in expected.ravel().tolist()]
        assert actual.dtype == object
        assert actual.ravel().tolist() == want
    else:
        assert actual.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(actual, expected)


# --- property tests ---------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def fixed_arrays(draw):
    datatype = draw(st.sampled_from(FIXED))
    dtype = codec.DATATYPE_TO_NUMPY[datatype]
    if draw(st.booleans()) and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    elements = None
    if dtype.kind == "f":
        elements = st.floats(width=8 * dtype.itemsize, allow_nan=False)
    return draw(hnp.arrays(dtype, draw(shapes), elements=elements))


@st.composite
def bytes_arrays(draw):
    shape = draw(shapes)
    count = int(np.prod(shape))
    items = draw(st.lists(st.binary(max_size=20), min_size=count, max_size=count))
    arr = np.empty(count, dtype=object)
    arr[:] = items
    return arr.reshape(shape)


@given(st.lists(st.one_of(fixed_arrays(), bytes_arrays()), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_request_roundtrip_every_datatype(arrays):
    request, decoded = _roundtrip_request(arrays)
    assert len(request.raw_input_contents) == len(arrays)
    assert [t.name for t in request.inputs] == [f"input__{i}" for i in range(len(arrays))]
    for expected, actual in zip(arrays, decoded, strict=True):
        _assert_same(expected, actual)


@given(st.lists(st.one_of(fixed_arrays(), bytes_arrays()), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_response_roundtrip_every_datatype(arrays):
    response, decoded = _roundtrip_response(arrays)
    assert len(response.raw_output_contents) == len(response.outputs) == len(arrays)
    for expected, actual in zip(arrays, decoded, strict=True):
        _assert_same(expected, actual)


@given(fixed_arrays())
@settings(max_examples=200, deadline=None)
def test_typed_contents_decode_like_raw(array):
    datatype = codec.numpy_to_datatype(array.dtype)
    if datatype == "FP16":
        return  # FP16 exists only raw
    field = codec._TYPED_FIELD[datatype][0]
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=array.shape)
    getattr(tensor.contents, field).extend(array.ravel().tolist())
    request = _wire(pb.ModelInferRequest(inputs=[tensor]))
    (decoded,) = codec.decode_request_inputs(request)
    _assert_same(array, decoded)


# numpy's fixed-width str arrays drop trailing NULs themselves, so leave NUL out.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)


@given(st.lists(_TEXT, max_size=12))
def test_unicode_array_travels_as_utf8_bytes(texts):
    array = np.array(texts, dtype=str)
    _, (decoded,) = _roundtrip_request([array])
    assert decoded.tolist() == [t.encode("utf-8") for t in texts]


# --- awkward arrays ---------------------------------------------------------------------------

_base = np.arange(24, dtype=np.float32).reshape(4, 6)
AWKWARD = {
    "0-d float": np.array(3.5, dtype=np.float64),
    "0-d bytes": np.array(b"abc", dtype=object),
    "numpy scalar": np.int16(-7),
    "empty 1-d": np.zeros(0, dtype=np.int32),
    "empty 2-d": np.zeros((3, 0), dtype=np.float32),
    "empty bytes": np.empty((0, 2), dtype=object),
    "fortran": np.asfortranarray(_base),
    "transposed": _base.T,
    "strided": _base[::2, ::3],
    "negative stride": _base[::-1, ::-2],
    "broadcast view": np.broadcast_to(np.arange(3, dtype=np.int64), (4, 3)),
    "big-endian f4": np.arange(6, dtype=">f4").reshape(2, 3),
    "big-endian i8": np.array([[1, -2], [3, 2**40]], dtype=">i8"),
    "big-endian u2 fortran": np.asfortranarray(np.arange(6, dtype=">u2").reshape(2, 3)),
    "float16": np.array([0.5, -1.0, 65504.0], dtype=np.float16),
    "bool": np.array([[True, False], [False, True]]),
    "bool strided": np.array([True, False, True, True])[::2],
    "unicode": np.array(["a", "héllo", ""]),
    "unicode 2-d fortran": np.asfortranarray(np.array([["x", "yy"], ["zzz", "é"]])),
    "fixed bytes": np.array([b"ab", b"c", b""], dtype="S2"),
    "object mixed str and bytes": np.array(["s", b"b"], dtype=object),
    "uint64 max": np.array([np.iinfo(np.uint64).max], dtype=np.uint64),
    "nan and inf": np.array([np.nan, np.inf, -np.inf], dtype=np.float32),
    "python list": [[1.0, 2.0], [3.0, 4.0]],
}


@pytest.mark.parametrize("array", list(AWKWARD.values()), ids=list(AWKWARD))
def test_awkward_arrays_roundtrip(array):
    expected = np.asarray(array)
    _, (decoded,) = _roundtrip_request([array])
    _assert_same(expected, decoded)
    _, (decoded_out,) = _roundtrip_response([array])
    _assert_same(expected, decoded_out)


def test_big_endian_encodes_little_endian_bytes():
    _, raw = codec.encode_output("y", np.array([1], dtype=">i4"))
    assert raw == b"\x01\x00\x00\x00"


def test_bytes_wire_format_matches_protocol_notes():
    tensor, raw = codec.encode_output("y", np.array([b"hi", b"hello"], dtype=object))
    assert raw == b"\x02\x00\x00\x00hi\x05\x00\x00\x00hello"
    assert tensor.datatype == "BYTES" and list(tensor.shape) == [2]


def test_raw_decode_is_zero_copy_and_read_only():
    raw = np.arange(4, dtype=np.float32).tobytes()
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[2, 2])
    arr = codec.decode_input(tensor, raw)
    assert not arr.flags.writeable
    assert np.shares_memory(arr, np.frombuffer(raw, dtype=np.uint8))


def test_non_canonical_bool_bytes_become_true():
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="BOOL", shape=[3])
    arr = codec.decode_input(tensor, b"\x00\x02\xff")
    assert arr.tolist() == [False, True, True]


def test_method_and_names_in_request():
    request = codec.encode_request(
        "iris_clf",
        [np.zeros((1, 4))],
        model_version="v1",
        method="predict_proba",
        input_names=["features"],
        request_id="r-1",
    )
    assert request.parameters["method"].string_param == "predict_proba"
    assert request.model_version == "v1" and request.id == "r-1"
    assert request.inputs[0].name == "features"


def test_response_keeps_only_requested_outputs_in_requested_order():
    request = pb.ModelInferRequest(model_name="m", model_version="2", id="abc")
    request.outputs.add(name="b")
    request.outputs.add(name="a")
    response = codec.encode_response(request, [np.array([1]), np.array([2.0])], ["a", "b"])
    assert [o.name for o in response.outputs] == ["b", "a"]
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "abc")
    assert [x.tolist() for x in codec.decode_response_outputs(response)] == [[2.0], [1]]


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.float32, "FP32"),
        (">f8", "FP64"),
        ("U3", "BYTES"),
        ("S1", "BYTES"),
        (object, "BYTES"),
        (bool, "BOOL"),
        ("uint8", "UINT8"),
        (np.int64, "INT64"),
        ("float16", "FP16"),
    ],
)
def test_numpy_to_datatype(dtype, datatype):
    assert codec.numpy_to_datatype(dtype) == datatype


# --- errors ------------------------------------------------------------------------------------


def _input(datatype="FP32", shape=(2, 4), name="input__0"):
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)


def _error(fn, *args) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args)
    return str(info.value)


def test_error_raw_size_mismatch_says_bytes_and_shape():
    msg = _error(codec.decode_input, _input(), b"\x00" * 12)
    assert msg == (
        "input 'input__0': raw content is 12 bytes but shape [2, 4] of FP32 needs 32 bytes"
    )


def test_error_unknown_datatype_lists_valid_ones():
    msg = _error(codec.decode_input, _input(datatype="FLOAT"), b"")
    assert "unknown datatype 'FLOAT'" in msg and "FP32" in msg and "BYTES" in msg


def test_error_bf16_is_explicit():
    assert "BF16 is not supported" in _error(codec.decode_input, _input(datatype="BF16"), b"")


def test_error_negative_dim():
    msg = _error(codec.decode_input, _input(shape=(-1, 4)), b"")
    assert "negative dimension" in msg and "[-1, 4]" in msg


def test_error_bytes_length_prefix_past_end():
    raw = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 10) + b"abc"
    msg = _error(codec.decode_input, _input("BYTES", (2,)), raw)
    assert "element 1 declares 10 bytes" in msg and "only 3 bytes remain" in msg


def test_error_bytes_truncated_prefix():
    raw = struct.pack("<I", 3) + b"abc" + b"\x01\x00"
    msg = _error(codec.decode_input, _input("BYTES", (2,)), raw)
    assert "BYTES element 1 length prefix at byte 7 runs past the end" in msg


def test_error_bytes_leftover():
    raw = struct.pack("<I", 1) + b"a" + b"extra"
    assert "left over" in _error(codec.decode_input, _input("BYTES", (1,)), raw)


def test_error_bytes_huge_shape_fails_before_allocating():
    msg = _error(codec.decode_input, _input("BYTES", (2**40, 2**20)), b"\x00" * 8)
    assert "need at least" in msg


def test_error_raw_count_differs_from_inputs():
    request = pb.ModelInferRequest(inputs=[_input(name="a"), _input(name="b")])
    request.raw_input_contents.append(b"\x00" * 32)
    msg = _error(codec.decode_request_inputs, request)
    assert "1 raw_input_contents entries for 2 inputs" in msg


def test_error_mixing_raw_and_typed():
    typed = _input(shape=(1,), name="b")
    typed.contents.fp32_contents.append(1.0)
    request = pb.ModelInferRequest(inputs=[_input(shape=(1,), name="a"), typed])
    request.raw_input_contents.extend([b"\x00" * 4, b"\x00" * 4])
    assert "not a mix" in _error(codec.decode_request_inputs, request)


def test_error_typed_wrong_field():
    tensor = _input(shape=(1,))
    tensor.contents.int_contents.append(1)
    assert "contents.fp32_contents" in _error(codec.decode_input, tensor, None)


def test_error_typed_count():
    tensor = _input(shape=(2, 2))
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    assert "has 2 elements but shape [2, 2] needs 4" in _error(codec.decode_input, tensor, None)


def test_error_typed_out_of_range():
    tensor = _input("INT8", (1,))
    tensor.contents.int_contents.append(300)
    assert "outside the INT8 range" in _error(codec.decode_input, tensor, None)


def test_error_fp16_has_no_typed_field():
    tensor = _input("FP16", (1,))
    tensor.contents.fp32_contents.append(1.0)
    assert "raw_input_contents" in _error(codec.decode_input, tensor, None)


def test_error_no_data():
    request = pb.ModelInferRequest(inputs=[_input()])
    assert "no data" in _error(codec.decode_request_inputs, request)


def test_error_duplicate_input_name():
    request = pb.ModelInferRequest(inputs=[_input(shape=(0,)), _input(shape=(0,))])
    assert "more than once" in _error(codec.decode_request_inputs, request)


def test_error_unsupported_numpy_dtype():
    msg = _error(codec.encode_output, "y", np.zeros(2, dtype=np.complex64))
    assert "output 'y'" in msg and "complex64" in msg


def test_error_unencodable_text():
    msg = _error(codec.encode_output, "y", np.array(["ok", "\ud800"]))
    assert "BYTES element 1 cannot be encoded as UTF-8" in msg


def test_error_ragged_list():
    assert "cannot convert" in _error(codec.encode_request, "m", [[[1, 2], [3]]])


def test_error_input_names_count():
    with pytest.raises(InvalidArgument, match="2 input names given for 1 arrays"):
        codec.encode_request("m", [np.zeros(1)], input_names=["a", "b"])


def test_error_unknown_requested_output():
    request = pb.ModelInferRequest()
    request.outputs.add(name="nope")
    msg = _error(codec.encode_response, request, [np.zeros(1)], ["output__0"])
    assert "'nope' does not exist" in msg and "output__0" in msg


def test_error_response_raw_count():
    response = pb.ModelInferResponse(
        outputs=[pb.ModelInferResponse.InferOutputTensor(name="y", datatype="FP32", shape=[1])]
    )
    response.raw_output_contents.extend([b"\x00" * 4, b"\x00" * 4])
    assert "raw_output_contents" in _error(codec.decode_response_outputs, response)


def _shaped(shape: list[int], datatype: str = "FP32", raw: bytes = b"") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="input__0", datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return request


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ([1 << 30, 0], "rows (dim 0)"),
        ([65536, 0], "has no elements but declares a dimension of 65536"),
        ([1 << 40, 1 << 40, 1 << 40], "more than"),
        ([1] * 17, "17 dimensions"),
        ([-1, 4], "negative dimension"),
    ],
)
def test_limits_refuse_declared_work_before_any_decode(shape: list[int], needle: str) -> None:
    from protos.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as info:
        codec.decode_request_inputs(_shaped(shape))
    assert needle in info.value.message


def test_limits_allow_zero_rows_and_small_empty_tensors() -> None:
    assert codec.decode_request_inputs(_shaped([0, 4]))[0].shape == (0, 4)
    assert codec.decode_request_inputs(_shaped([4096, 0]))[0].shape == (4096, 0)


def test_limits_bound_names_and_inputs() -> None:
    from protos.errors import InvalidArgument

    long = _shaped([1, 1], raw=b"\0" * 4)
    long.model_name = "m" * 10_000
    with pytest.raises(InvalidArgument, match="10000 characters"):
        codec.check_request_limits(long)
    many = pb.ModelInferRequest(model_name="m")
    for i in range(65):
        many.inputs.add(name=f"i{i}", datatype="FP32", shape=[1])
    with pytest.raises(InvalidArgument, match="65 input tensors"):
        codec.check_request_limits(many)


def test_parse_infer_request_turns_garbage_into_invalid_argument() -> None:
    from protos.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="not a valid ModelInferRequest"):
        codec.parse_infer_request(b"\xff\xff\xff")
    assert codec.parse_infer_request(_shaped([1]).SerializeToString()).model_name == "m"
