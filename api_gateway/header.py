"""Read only the routing header (model name, version, id) of a serialized ModelInferRequest.

The gateway forwards request bytes untouched; parsing the whole message would copy every
tensor. This walks the top-level protobuf fields, skipping length-delimited ones it does not
need (inputs, raw tensor bytes) by their length, so the cost does not grow with tensor size.
Field numbers are Triton's: model_name = 1, model_version = 2, id = 3.
"""

from __future__ import annotations

from typing import NamedTuple

from protos.codec import DEFAULT_LIMITS, MODEL_NAME_REQUIRED
from protos.errors import InvalidArgument, shown
from protos.wire import encode_varint, read_varint

__all__ = ["RequestHeader", "parse_request_header", "wrap_stream_response"]

_NAME, _VERSION, _ID = 1, 2, 3


class RequestHeader(NamedTuple):
    """What routing needs from a ModelInferRequest."""

    model_name: str
    model_version: str
    request_id: str


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = read_varint(data, pos, end)
    if pos < 0:
        raise InvalidArgument("malformed ModelInferRequest: truncated or overlong varint")
    return value, pos


def parse_request_header(data: bytes) -> RequestHeader:
    """The header of serialized ModelInferRequest bytes; InvalidArgument if they are malformed."""
    fields: dict[int, str] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _varint(data, pos, end)
            number, wire_type = key >> 3, key & 7
            if wire_type == 2:
                length, pos = _varint(data, pos, end)
                if pos + length > end:
                    raise InvalidArgument("malformed ModelInferRequest: truncated field")
                if number <= _ID:
                    fields[number] = data[pos : pos + length].decode()
                pos += length
            elif wire_type == 0:
                _, pos = _varint(data, pos, end)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            else:
                raise InvalidArgument(f"malformed ModelInferRequest: wire type {wire_type}")
            if number == 0:
                raise InvalidArgument("malformed ModelInferRequest: field number 0")
    except IndexError:
        raise InvalidArgument("malformed ModelInferRequest: truncated message") from None
    except UnicodeDecodeError:
        raise InvalidArgument("malformed ModelInferRequest: model name is not UTF-8") from None
    if pos != end:
        raise InvalidArgument("malformed ModelInferRequest: truncated message")
    name = fields.get(_NAME, "")
    if not name:
        raise InvalidArgument(MODEL_NAME_REQUIRED)
    version = fields.get(_VERSION, "")
    limit = DEFAULT_LIMITS.max_name_chars  # the worker's limit: refuse here, not a hop later
    for what, value in (("model_name", name), ("model_version", version)):
        if len(value) > limit:
            raise InvalidArgument(f"{what} {shown(value)} is longer than {limit} characters")
    return RequestHeader(name, version, fields.get(_ID, ""))


def wrap_stream_response(response: bytes) -> bytes:
    """Serialized ModelStreamInferResponse{infer_response = response} without re-parsing it."""
    return b"\x12" + encode_varint(len(response)) + response
