"""HTTP/REST v2 bodies <-> protobuf: JSON tensors, Triton's binary extension, bad input."""

from __future__ import annotations

import json
import struct
import uuid
from multiprocessing import shared_memory

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protos import codec, http_codec
from protos import grpc_service_pb2 as pb
from protos import model_config_pb2 as mc
from protos.errors import ErrorCode, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from protos.shm import RegionStatus, SharedMemoryRegistry
from protos.status import HTTP_STATUS, to_http_status


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _decode(request: pb.ModelInferRequest) -> list[np.ndarray]:
    return codec.decode_request_inputs(request)


def test_json_tensor_becomes_a_raw_request() -> None:
    body = _json(
        {
            "id": "r1",
            "parameters": {"method": "predict_proba", "timeout": 5000000},
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3.5, 4]]},
                {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["hi", "héllo"]},
            ],
        }
    )
    parsed = http_codec.infer_request_from_http("m", "3", body, None)
    request = parsed.request
    assert (request.model_name, request.model_version, request.id) == ("m", "3", "r1")
    assert request.parameters["method"].string_param == "predict_proba"
    assert request.parameters["timeout"].int64_param == 5000000
    x, s = _decode(request)
    np.testing.assert_array_equal(x, np.array([[1, 2], [3.5, 4]], np.float32))
    assert s.tolist() == [b"hi", "héllo".encode()]
    assert parsed.binary_default is False
    assert parsed.binary_by_output == {}


def test_binary_inputs_follow_the_json_header() -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    b = np.array([b"ab", b"c"], dtype=object)
    b_raw = codec.serialize_bytes_tensor(b)
    header = _json(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": [2, 3],
                    "datatype": "INT32",
                    "parameters": {"binary_data_size": a.nbytes},
                },
                {"name": "j", "shape": [1], "datatype": "BOOL", "data": [True]},
                {
                    "name": "b",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(b_raw)},
                },
            ],
            "outputs": [{"name": "out", "parameters": {"binary_data": True}}],
            "parameters": {"binary_data_output": False},
        }
    )
    body = header + a.tobytes() + b_raw
    parsed = http_codec.infer_request_from_http("m", "", body, len(header))
    got_a, got_j, got_b = _decode(parsed.request)
    np.testing.assert_array_equal(got_a, a)
    assert got_j.tolist() == [True]
    assert got_b.tolist() == [b"ab", b"c"]
    assert [o.name for o in parsed.request.outputs] == ["out"]
    assert "binary_data" not in parsed.request.outputs[0].parameters
    assert "binary_data_size" not in parsed.request.inputs[0].parameters
    assert parsed.binary_by_output == {"out": True}


def test_shared_memory_inputs_pass_their_parameters_and_carry_no_data() -> None:
    body = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [4],
                    "datatype": "FP32",
                    "parameters": {"shared_memory_region": "in0", "shared_memory_byte_size": 16},
                }
            ]
        }
    )
    request = http_codec.infer_request_from_http("m", "", body, None).request
    assert len(request.raw_input_contents) == 0
    params = request.inputs[0].parameters
    assert params["shared_memory_region"].string_param == "in0"
    assert params["shared_memory_byte_size"].int64_param == 16


_IN_REGION = {"shared_memory_region": "in0", "shared_memory_byte_size": 8}


@pytest.mark.parametrize(
    ("tensor", "binary"),
    [
        ({"parameters": _IN_REGION, "data": [1.0, 2.0]}, None),
        ({"parameters": {**_IN_REGION, "binary_data_size": 8}}, bytes(8)),
    ],
    ids=["json-data", "binary-data"],
)
def test_shared_memory_input_with_data_in_the_body_is_refused(
    tensor: dict, binary: bytes | None
) -> None:
    header = _json({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", **tensor}]})
    body, length = (header, None) if binary is None else (header + binary, len(header))
    with pytest.raises(InvalidArgument, match="'in0' and also carries data in the body"):
        http_codec.infer_request_from_http("m", "", body, length)


@pytest.mark.parametrize(
    ("tensor", "needle"),
    [
        ({"shape": [3], "datatype": "FP32", "data": [1, 2]}, "has 2 elements but shape [3]"),
        ({"shape": [2], "datatype": "INT32", "data": [1, 1.5]}, "number values"),
        ({"shape": [1], "datatype": "UINT8", "data": [300]}, "outside the UINT8 range"),
        ({"shape": [1], "datatype": "FP32", "data": ["1.5"]}, "non-numeric"),
        ({"shape": [1], "datatype": "BOOL", "data": [2]}, "boolean"),
        ({"shape": [2], "datatype": "BYTES", "data": ["a", 1]}, "must be a JSON string"),
        ({"shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}, "rectangular"),
        ({"shape": [1], "datatype": "FP99", "data": [1]}, "unknown datatype"),
        ({"shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
        ({"shape": [1], "datatype": "FP32"}, "has no data"),
        ({"shape": [1], "data": [1]}, "datatype"),
    ],
)
def test_bad_json_tensors_say_what_to_fix(tensor: dict, needle: str) -> None:
    body = _json({"inputs": [{"name": "x", **tensor}]})
    with pytest.raises(InvalidArgument, match="x|datatype") as info:
        http_codec.infer_request_from_http("m", "", body, None)
    assert needle in info.value.message


@pytest.mark.parametrize(
    ("body", "header_length", "needle"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"", None, "empty"),
        (b"\xff\xfe", None, "not"),
        (b"[1, 2]", None, "JSON object"),
        (_json({"inputs": []}), None, "non-empty 'inputs'"),
    ],
)
def test_malformed_bodies_are_invalid(body: bytes, header_length: int | None, needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        http_codec.infer_request_from_http("m", "", body, header_length)
    assert needle in info.value.message


def _binary_header(size: int) -> bytes:
    return _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )


def test_binary_sizes_past_or_short_of_the_body_are_refused() -> None:
    header = _binary_header(8)
    with pytest.raises(InvalidArgument, match="runs past"):
        http_codec.infer_request_from_http("m", "", header + b"\0" * 4, len(header))
    with pytest.raises(InvalidArgument, match="bytes after the JSON header"):
        http_codec.infer_request_from_http("m", "", header + b"\0" * 12, len(header))
    with pytest.raises(InvalidArgument, match="no Inference-Header-Content-Length"):
        http_codec.infer_request_from_http("m", "", header, None)
    bad = _binary_header(4)
    short = http_codec.infer_request_from_http("m", "", bad + b"\0" * 4, len(bad)).request
    with pytest.raises(InvalidArgument, match="needs 8 bytes"):  # size vs shape, by the codec
        _decode(short)


def test_header_length_and_content_type_checks() -> None:
    assert http_codec.parse_header_length(None, 10) is None
    assert http_codec.parse_header_length("4", 10) == 4
    with pytest.raises(InvalidArgument, match="only 10 bytes"):
        http_codec.parse_header_length("11", 10)
    with pytest.raises(InvalidArgument, match="non-negative integer"):
        http_codec.parse_header_length("-3", 10)
    for ok in (None, "", "application/json", "application/json; charset=utf-8"):
        http_codec.check_content_type(ok)
    http_codec.check_content_type("application/octet-stream")
    with pytest.raises(InvalidArgument, match="unsupported Content-Type"):
        http_codec.check_content_type("text/xml")


def _response(arrays: dict[str, np.ndarray]) -> pb.ModelInferResponse:
    request = pb.ModelInferRequest(model_name="m")
    response = codec.encode_response(request, list(arrays.values()), list(arrays))
    response.model_version = "1"
    response.id = "abc"
    return response


def test_response_as_json_data() -> None:
    y = np.array([[0.25, 0.75]], np.float32)
    s = np.array([b"ok"], dtype=object)
    answer = http_codec.infer_response_to_http(_response({"y": y, "s": s}))
    assert answer.header_length is None
    assert answer.content_type == "application/json"
    doc = json.loads(answer.body)
    assert doc["model_name"] == "m"
    assert doc["model_version"] == "1"
    assert doc["id"] == "abc"
    assert doc["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
        {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["ok"]},
    ]


def test_response_with_binary_outputs() -> None:
    y = np.arange(4, dtype=np.float64)
    z = np.array([1, 2], np.int8)
    answer = http_codec.infer_response_to_http(
        _response({"y": y, "z": z}), binary_default=True, binary_by_output={"z": False}
    )
    assert answer.header_length is not None
    doc = json.loads(answer.body[: answer.header_length])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": y.nbytes}
    assert "data" not in doc["outputs"][0]
    assert doc["outputs"][1]["data"] == [1, 2]
    np.testing.assert_array_equal(np.frombuffer(answer.body[answer.header_length :]), y)


def test_output_in_a_region_is_answered_with_name_datatype_and_shape_only() -> None:
    segment = shared_memory.SharedMemory(f"/rf-http-{uuid.uuid4().hex[:12]}", create=True, size=512)
    registry = SharedMemoryRegistry()
    try:
        registry.register("out", "/" + segment.name.lstrip("/"), 0, 512)
        request = pb.ModelInferRequest(model_name="m")
        into = request.outputs.add(name="y")
        into.parameters[codec.SHM_REGION].string_param = "out"
        into.parameters[codec.SHM_BYTE_SIZE].int64_param = 512
        into.parameters[codec.SHM_OFFSET].int64_param = 64
        request.outputs.add(name="z")
        y, z = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7, 8], np.int16)
        response = codec.encode_response(request, [y, z], ["y", "z"], registry)
        answer = http_codec.infer_response_to_http(response, binary_default=True)
        assert answer.header_length is not None
        doc = json.loads(answer.body[: answer.header_length])
        # Triton's answer: no data, no binary bytes, no parameters (its C++ client reads any
        # output "parameters" as binary data and needs binary_data_size there)
        assert doc["outputs"] == [
            {"name": "y", "datatype": "FP32", "shape": [2, 3]},
            {"name": "z", "datatype": "INT16", "shape": [2],
             "parameters": {"binary_data_size": z.nbytes}},
        ]  # fmt: skip
        assert answer.body[answer.header_length :] == z.tobytes()
        written = np.frombuffer(segment.buf[64 : 64 + y.nbytes], np.float32).reshape(2, 3)
        np.testing.assert_array_equal(written, y)
        del written  # release the view before the segment closes
        json_answer = json.loads(http_codec.infer_response_to_http(response).body)
        assert "data" not in json_answer["outputs"][0]
        assert json_answer["outputs"][1]["data"] == [7, 8]
    finally:
        registry.close()
        segment.close()
        segment.unlink()


def test_shm_register_body_and_status_list() -> None:
    request = http_codec.shm_register_from_json("in0", {"key": "/k", "byte_size": 64})
    assert (request.name, request.key, request.offset, request.byte_size) == ("in0", "/k", 0, 64)
    request = http_codec.shm_register_from_json("r", {"key": "/k", "offset": 8, "byte_size": 1})
    assert request.offset == 8
    for doc, needle in [
        ({"byte_size": 64}, "'key' string"),
        ({"key": 5, "byte_size": 64}, "'key' string"),
        ({"key": "/k"}, "needs a 'byte_size'"),
        ({"key": "/k", "byte_size": -1}, "non-negative integer"),
        ({"key": "/k", "byte_size": True}, "non-negative integer"),
        ({"key": "/k", "byte_size": 1.5}, "non-negative integer"),
        ({"key": "/k", "byte_size": 2**64}, "non-negative integer"),
        ({"key": "/k", "byte_size": 8, "offset": "0"}, "'offset'"),
    ]:
        with pytest.raises(InvalidArgument, match=needle):
            http_codec.shm_register_from_json("in0", doc)
    regions = [RegionStatus("a", "/ka", 0, 16), RegionStatus("b", "/kb", 32, 8)]
    assert http_codec.shm_status_to_json(regions) == [
        {"name": "a", "key": "/ka", "offset": 0, "byte_size": 16},
        {"name": "b", "key": "/kb", "offset": 32, "byte_size": 8},
    ]


_DTYPES = st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.uint16, np.int64])


@given(hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)))
def test_json_round_trip_keeps_every_value(array: np.ndarray) -> None:
    if array.dtype.kind == "f":
        array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    datatype = codec.numpy_to_datatype(array.dtype)
    body = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "data": array.tolist(),
                }
            ]
        }
    )
    (back,) = _decode(http_codec.infer_request_from_http("m", "", body, None).request)
    np.testing.assert_array_equal(back, array)
    answer = http_codec.infer_response_to_http(_response({"y": back}))
    doc = json.loads(answer.body)
    np.testing.assert_array_equal(
        np.asarray(doc["outputs"][0]["data"], dtype=array.dtype).reshape(array.shape), array
    )


def test_messages_become_triton_json_with_numbers() -> None:
    config = mc.ModelConfig(
        name="m",
        max_batch_size=8,
        input=[mc.ModelInput(name="x", data_type=mc.TYPE_FP32, dims=[4])],
        metric_tags={"method": "predict"},
    )
    config.dynamic_batching.SetInParent()
    doc = http_codec.message_to_json(config)
    assert doc["input"][0]["data_type"] == "TYPE_FP32"
    assert doc["input"][0]["dims"] == [4]
    assert "sequence_batching" not in doc
    assert doc["max_batch_size"] == 8
    assert doc["metric_tags"] == {"method": "predict"}
    assert doc["dynamic_batching"]["max_queue_delay_microseconds"] == 0
    stats = pb.ModelStatisticsResponse(
        model_stats=[pb.ModelStatistics(name="m", version="1", inference_count=2**40)]
    )
    first = http_codec.message_to_json(stats, all_messages=True)["model_stats"][0]
    assert first["inference_count"] == 2**40
    assert first["inference_stats"]["fail"] == {"count": 0, "ns": 0}


def test_http_status_table_covers_every_code() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert to_http_status(InvalidArgument("x")) == 400
    assert to_http_status(NotFound("x")) == 404
    assert to_http_status(ResourceExhausted("x")) == 429
    assert to_http_status(Unavailable("x")) == 503
    assert to_http_status(RuntimeError("x")) == 500


def test_bytes_length_prefix_layout_matches_grpc() -> None:
    body = _json({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]})
    request = http_codec.infer_request_from_http("m", "", body, None).request
    assert request.raw_input_contents[0] == struct.pack("<I", 2) + b"hi"


def test_http_port_follows_grpc_port_zero_unless_given() -> None:
    from protos.http_server import http_bind_port

    assert http_bind_port(None, 8001, 8000) == 8000  # Triton's habit: beside gRPC
    assert http_bind_port(None, 0, 8000) == 0  # tests and local clusters: any free port
    assert http_bind_port(9000, 0, 8000) == 9000
    assert http_bind_port(0, 8001, 8000) == 0
    assert http_bind_port(-1, 8001, 8000) is None  # off
