"""The gateway's header-only parse of ModelInferRequest bytes matches protobuf's full parse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_gateway.header import parse_request_header, wrap_stream_response
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)


@given(
    names,
    st.text(max_size=10),
    st.text(max_size=10),
    st.lists(st.binary(max_size=300), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(0, 2**40), max_size=3),
)
def test_header_matches_full_parse(name, version, request_id, raws, params) -> None:
    request = pb.ModelInferRequest(model_name=name, model_version=version, id=request_id)
    for i, raw in enumerate(raws):
        request.inputs.add(name=f"input__{i}", datatype="UINT8", shape=[len(raw)])
        request.raw_input_contents.append(raw)
    for key, value in params.items():
        request.parameters[key].uint64_param = value
    header = parse_request_header(request.SerializeToString())
    assert (header.model_name, header.model_version, header.request_id) == (
        name,
        version,
        request_id,
    )


def test_big_tensor_is_skipped_not_parsed() -> None:
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\x00" * (8 << 20)])
    data = request.SerializeToString()
    assert parse_request_header(data).model_name == "m"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "model_name is required"),
        (b"\x0a\x05ab", "truncated"),
        (b"\xff\xff\xff", "truncated"),
        (b"\x0b", "wire type 3"),
        (b"\x0a\x02\xff\xfe", "UTF-8"),
        (b"garbage!", "malformed"),
    ],
)
def test_malformed_bytes_are_invalid_argument(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_request_header(data)


def test_stream_wrapper_decodes_as_triton_expects() -> None:
    response = pb.ModelInferResponse(model_name="m", id="7", raw_output_contents=[b"x" * 300])
    wrapped = pb.ModelStreamInferResponse.FromString(
        wrap_stream_response(response.SerializeToString())
    )
    assert wrapped.error_message == ""
    assert wrapped.infer_response == response
