"""protos.wire and the codec's wire path: the same messages as protobuf's, fewer copies."""

from __future__ import annotations

import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument
from protos.wire import append_repeated_bytes, split_repeated_bytes

RAW_INPUTS = 7  # ModelInferRequest.raw_input_contents
RAW_OUTPUTS = 6  # ModelInferResponse.raw_output_contents


def _request(*arrays: np.ndarray, **fields) -> pb.ModelInferRequest:
    request = codec.encode_request("m", list(arrays), request_id="r-1", **fields)
    request.parameters["method"].string_param = "predict"
    return request


def test_field_numbers_match_the_proto():
    fields = pb.ModelInferRequest.DESCRIPTOR.fields_by_name
    assert fields["raw_input_contents"].number == RAW_INPUTS
    assert pb.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number == 6


def test_split_gives_the_entries_as_views_and_the_rest_parses_to_the_same_message():
    a = np.arange(70_000, dtype=np.float32)
    b = np.arange(12, dtype=np.int64).reshape(3, 4)
    request = _request(a, b)
    data = request.SerializeToString()
    split = split_repeated_bytes(data, RAW_INPUTS)
    assert split is not None
    rest, entries = split
    assert [bytes(e) for e in entries] == list(request.raw_input_contents)
    assert all(e.obj is data for e in entries)  # views over the received bytes: no copy
    parsed = pb.ModelInferRequest.FromString(rest)
    assert len(parsed.raw_input_contents) == 0
    parsed.raw_input_contents.extend(bytes(e) for e in entries)
    assert parsed == request


def test_a_message_without_the_field_comes_back_whole():
    data = pb.ModelInferRequest(model_name="m", id="x").SerializeToString()
    assert split_repeated_bytes(data, RAW_INPUTS) == (data, [])


@pytest.mark.parametrize(
    "data",
    [
        b"\x3a\xff\xff\xff\xff\x0f",  # a 4 GiB length with no bytes behind it
        b"\x3a\x05abc",  # a length past the end
        b"\x0b\x0c",  # a group (wire type 3)
        b"\x80" * 11,  # a varint of 11 bytes
        b"\x3a",  # a key and nothing else
    ],
)
def test_anything_but_plain_wire_format_is_left_to_protobuf(data):
    assert split_repeated_bytes(data, RAW_INPUTS) is None


def test_too_many_fields_is_left_to_protobuf():
    data = b"\x0a\x00" * 2000  # 2,000 empty model_name fields: 4 kB, O(fields) to scan
    assert split_repeated_bytes(data, RAW_INPUTS, max_fields=1024) is None


def test_a_field_of_another_wire_type_stays_in_the_message():
    data = b"\x38\x01" + b"\x3a\x02hi"  # field 7 as a varint, then as bytes
    rest, entries = split_repeated_bytes(data, RAW_INPUTS)
    assert rest == b"\x38\x01"
    assert [bytes(e) for e in entries] == [b"hi"]


def test_append_makes_the_repeated_field_protobuf_reads():
    head = pb.ModelInferResponse(model_name="m", id="r").SerializeToString()
    big = np.arange(100_000, dtype=np.float32)
    entries = [b"", b"abc", big.view(np.uint8).data, memoryview(b"x" * 300)]
    response = pb.ModelInferResponse.FromString(append_repeated_bytes(head, RAW_OUTPUTS, entries))
    assert response.model_name == "m"
    assert response.id == "r"
    assert list(response.raw_output_contents) == [bytes(e) for e in entries]
    assert append_repeated_bytes(head, RAW_OUTPUTS, []) == head


def test_parse_wire_splits_big_requests_only():
    small = _request(np.zeros((2, 4), dtype=np.float32))
    request, raws = codec.parse_infer_request_wire(small.SerializeToString())
    assert raws is None
    assert request == small
    big = _request(np.ones((1, codec.SPLIT_MIN_BYTES), dtype=np.float32))
    request, raws = codec.parse_infer_request_wire(big.SerializeToString())
    assert raws is not None
    assert len(raws) == 1
    assert len(request.raw_input_contents) == 0
    (array,) = codec.decode_request_inputs(request, raws=raws)
    assert array.shape == (1, codec.SPLIT_MIN_BYTES)
    assert array.dtype == np.float32
    assert not array.flags.writeable
    assert float(array.sum()) == codec.SPLIT_MIN_BYTES


def test_parse_wire_refuses_garbage_as_invalid_argument():
    with pytest.raises(InvalidArgument, match="not a valid ModelInferRequest"):
        codec.parse_infer_request_wire(b"\xff" * (codec.SPLIT_MIN_BYTES + 10))
    with pytest.raises(InvalidArgument, match="not a valid ModelInferRequest"):
        codec.parse_infer_request_wire(b"\x3a\x05abc")


def test_wire_response_equals_the_message_response():
    request = _request(np.zeros((1, 4), dtype=np.float32))
    outputs = [
        np.arange(90_000, dtype=np.float32).reshape(300, 300),
        np.arange(6, dtype=np.float64).reshape(3, 2).T,  # not C-contiguous: copied
        np.array([b"ab", b"c"], dtype=object),
        np.arange(4, dtype=">i4"),  # big-endian: converted
    ]
    names = ["a", "b", "c", "d"]
    message = codec.encode_response(request, outputs, names)
    message.model_name, message.model_version = "m", "7"
    wire = codec.encode_response_wire(request, outputs, names, model_name="m", model_version="7")
    assert pb.ModelInferResponse.FromString(wire) == message
    decoded = codec.decode_response_outputs(pb.ModelInferResponse.FromString(wire))
    for got, want in zip(decoded, outputs, strict=True):
        np.testing.assert_array_equal(got, want)


def test_wire_response_keeps_only_requested_outputs():
    request = _request(np.zeros((1, 4), dtype=np.float32))
    request.outputs.add(name="b")
    wire = codec.encode_response_wire(
        request, [np.zeros(2), np.ones(3)], ["a", "b"], model_name="m", model_version="1"
    )
    response = pb.ModelInferResponse.FromString(wire)
    assert [o.name for o in response.outputs] == ["b"]
    request.outputs.add(name="zz")
    with pytest.raises(InvalidArgument, match="does not exist"):
        codec.encode_response_wire(
            request, [np.zeros(2), np.ones(3)], ["a", "b"], model_name="m", model_version="1"
        )
