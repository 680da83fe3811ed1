"""HTTP/REST v2 bodies <-> the protobuf messages gRPC uses, as Triton serves them over HTTP.

An infer request arrives as JSON (``{"inputs": [{"name", "shape", "datatype", "data"}]}``) or
with Triton's binary tensor extension: the JSON header first, its length in the
``Inference-Header-Content-Length`` header, then each binary input's bytes in input order, each
sized by the input's ``parameters.binary_data_size``. It becomes a ``ModelInferRequest`` with
every tensor in ``raw_input_contents``, so the rest of the request path is the gRPC one. The
answer goes back as JSON ``data`` unless binary was asked for (``binary_data_output`` on the
request, ``binary_data`` per output). Typed JSON data is checked against its datatype (no silent
truncation of 1.5 to INT32, no wrap of 300 to UINT8) and its element count against the shape.
System shared memory (Triton's extension): a tensor whose parameters name a
``shared_memory_region`` carries no data in the body, and an output written to a region is
answered with its name, datatype and shape only (no ``data``, no ``parameters``, no binary
bytes), as Triton does; the register body and the status list have their JSON forms here too.
Every client mistake raises ``InvalidArgument`` with what to fix. No HTTP library is imported
here: the front doors pass bytes and header values in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument
from protos.shm import RegionStatus

__all__ = [
    "HEADER_LENGTH",
    "BINARY_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "BINARY_PARAMETERS",
    "HttpBody",
    "HttpInferRequest",
    "json_data_to_raw",
    "check_content_type",
    "parse_header_length",
    "parse_json",
    "infer_request_from_http",
    "infer_response_to_http",
    "parameters_from_json",
    "parameters_to_json",
    "repository_parameters_from_json",
    "shm_register_from_json",
    "shm_status_to_json",
    "message_to_json",
    "dumps",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
# Content types an infer body may declare (none at all is what tritonclient.http sends).
# curl -d sends application/x-www-form-urlencoded unless told otherwise; Triton ignores the
# type, so a user's plain curl command keeps working here too.
_ACCEPTED_TYPES = frozenset(
    {
        "",
        JSON_CONTENT_TYPE,
        BINARY_CONTENT_TYPE,
        "application/x-www-form-urlencoded",
        "application/vnd.sagemaker-triton.binary+json",
    }
)
# Parameters of the binary extension: consumed here, never passed on to the model.
BINARY_PARAMETERS = frozenset({"binary_data_size", "binary_data", "binary_data_output"})

# Which numpy kinds (of the array json data infers to) each datatype family accepts.
_KINDS_FOR: dict[str, str] = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


class HttpBody:
    """An HTTP answer: bytes, their content type, and the binary header length if any."""

    __slots__ = ("body", "content_type", "header_length")

    def __init__(self, body: bytes, content_type: str, header_length: int | None = None) -> None:
        self.body = body
        self.content_type = content_type
        self.header_length = header_length


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (the form every HTTP answer takes)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


def check_content_type(content_type: str | None) -> None:
    """Refuse a body whose declared media type is neither JSON nor binary."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _ACCEPTED_TYPES:
        raise InvalidArgument(
            f"unsupported Content-Type {content_type!r}: send {JSON_CONTENT_TYPE}, or "
            f"{BINARY_CONTENT_TYPE} with the {HEADER_LENGTH} header"
        )


def parse_header_length(value: str | None, body_bytes: int) -> int | None:
    """The JSON header's length from ``Inference-Header-Content-Length`` (None: all JSON)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        raise InvalidArgument(f"{HEADER_LENGTH} must be a non-negative integer, got {value!r}")
    length = int(text)
    if length > body_bytes:
        raise InvalidArgument(
            f"{HEADER_LENGTH} is {length} but the body has only {body_bytes} bytes"
        )
    return length


def parse_json(data: bytes | memoryview, what: str = "request body") -> Any:
    """JSON from bytes; malformed JSON names where it broke."""
    if len(data) == 0:
        raise InvalidArgument(f"{what} is empty: send a JSON object")
    try:
        return json.loads(bytes(data))
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{what} is not UTF-8 JSON: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


# ---------------------------------------------------------------------------------------------
# parameters


def _set_parameter(param: Any, key: str, value: Any) -> None:
    if isinstance(value, bool):
        param.bool_param = value
    elif isinstance(value, int):
        if value >= 2**63:
            param.uint64_param = value
        else:
            param.int64_param = value
    elif isinstance(value, float):
        param.double_param = value
    elif isinstance(value, str):
        param.string_param = value
    else:
        raise InvalidArgument(
            f"parameter {key!r} must be a bool, integer, number or string, "
            f"got {type(value).__name__}"
        )


def parameters_from_json(target: Any, params: Any, what: str, skip: frozenset[str]) -> None:
    """Copy a JSON ``parameters`` object into a protobuf parameters map (``skip`` left out)."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidArgument(f"{what}: 'parameters' must be a JSON object")
    for key, value in params.items():
        if key in skip:
            continue
        _set_parameter(target[key], key, value)


def repository_parameters_from_json(target: Any, params: Any) -> None:
    """Copy load/unload ``parameters`` (bool, integer or string values) into the proto map."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidArgument("repository request: 'parameters' must be a JSON object")
    for key, value in params.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int) and -(2**63) <= value < 2**63:
            target[key].int64_param = value
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            raise InvalidArgument(
                f"repository parameter {key!r} must be a bool, an integer or a string"
            )


def parameters_to_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """A protobuf parameters map as a JSON object."""
    out: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is not None:
            value = getattr(param, choice)
            out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def _flag(params: Any, key: str, what: str) -> bool | None:
    if not isinstance(params, dict) or key not in params:
        return None
    value = params[key]
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what}: parameter {key!r} must be true or false")
    return value


# ---------------------------------------------------------------------------------------------
# infer request: HTTP -> ModelInferRequest


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _shape(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidArgument(f"{what}: 'shape' must be a list of non-negative integers")
    return value


def json_data_to_raw(data: Any, datatype: str, shape: Sequence[int], what: str) -> bytes:
    """Typed JSON ``data`` (flat or nested, row-major) as the tensor's raw wire bytes."""
    dtype = codec.datatype_to_numpy(datatype, what=what)
    count = math.prod(shape)
    if not isinstance(data, list):
        data = [data]
    try:
        arr = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{what}: 'data' is not a rectangular list: {exc}") from None
    if arr.size != count:
        raise InvalidArgument(
            f"{what}: 'data' has {arr.size} elements but shape {list(shape)} needs {count}"
        )
    if datatype == "BYTES":
        flat = arr.reshape(-1)
        for index, item in enumerate(flat.tolist()):
            if not isinstance(item, str):
                raise InvalidArgument(
                    f"{what}: BYTES element {index} must be a JSON string, "
                    f"got {type(item).__name__}"
                )
        return codec.serialize_bytes_tensor(flat)
    if count:
        allowed = _KINDS_FOR[dtype.kind]
        if arr.dtype.kind not in allowed:
            raise InvalidArgument(
                f"{what}: 'data' holds {_kind_name(arr.dtype.kind)} values but datatype "
                f"{datatype} needs {_kind_name(dtype.kind)} values"
            )
        if dtype.kind in "iu" and arr.dtype.kind in "iu":
            info = np.iinfo(dtype)
            if arr.min() < info.min or arr.max() > info.max:
                raise InvalidArgument(
                    f"{what}: 'data' holds values outside the {datatype} range "
                    f"[{info.min}, {info.max}]"
                )
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _kind_name(kind: str) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(kind, "non-numeric")


class HttpInferRequest(NamedTuple):
    """A decoded HTTP infer: the request, how its outputs are answered, its trace context."""

    request: pb.ModelInferRequest
    binary_default: bool
    binary_by_output: dict[str, bool]
    traceparent: str | None = None  # the W3C header as it came (parsed by the tracing code)


def infer_request_from_http(
    model_name: str,
    model_version: str,
    body: bytes,
    header_length: int | None,
) -> HttpInferRequest:
    """A ``ModelInferRequest`` (all tensors raw) from an HTTP infer body.

    ``header_length`` is the parsed ``Inference-Header-Content-Length`` (None: the body is
    all JSON). Tensor and request parameters other than the binary extension's pass through,
    so extensions (shared-memory regions, tracing) see them as gRPC clients send them; an
    input that names a ``shared_memory_region`` carries no data here, as in Triton's gRPC.
    """
    view = memoryview(body)
    json_end = len(body) if header_length is None else header_length
    doc = _object(parse_json(view[:json_end]), "request body")
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version)
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("request 'id' must be a string")
    request.id = request_id
    parameters_from_json(request.parameters, doc.get("parameters"), "request", BINARY_PARAMETERS)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgument("request body needs a non-empty 'inputs' list")
    offset = json_end
    for index, item in enumerate(inputs):
        tensor = _object(item, f"inputs[{index}]")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"inputs[{index}] needs a 'name' string")
        what = f"input {name!r}"
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidArgument(f"{what} needs a 'datatype' string (e.g. FP32)")
        shape = _shape(tensor.get("shape"), what)
        params = tensor.get("parameters")
        entry = request.inputs.add(name=name, datatype=datatype, shape=shape)
        parameters_from_json(entry.parameters, params, what, BINARY_PARAMETERS)
        given = params if isinstance(params, dict) else {}
        size = given.get("binary_data_size")
        in_shm = codec.SHM_REGION in given
        if in_shm and (size is not None or "data" in tensor):
            raise InvalidArgument(
                f"{what} names shared-memory region {given[codec.SHM_REGION]!r} and also "
                "carries data in the body; send one"
            )
        if size is not None:
            if "data" in tensor:
                raise InvalidArgument(f"{what} has both 'data' and binary_data_size; send one")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidArgument(f"{what}: binary_data_size must be a non-negative integer")
            if header_length is None:
                raise InvalidArgument(
                    f"{what} declares binary_data_size but the request has no {HEADER_LENGTH} "
                    "header saying where the binary data starts"
                )
            if offset + size > len(body):
                raise InvalidArgument(
                    f"{what}: binary_data_size {size} at byte {offset} runs past the "
                    f"{len(body)}-byte body"
                )
            request.raw_input_contents.append(bytes(view[offset : offset + size]))
            offset += size
        elif "data" in tensor:
            codec.datatype_to_numpy(datatype, what=what)
            request.raw_input_contents.append(
                json_data_to_raw(tensor["data"], datatype, shape, what)
            )
        elif not in_shm:
            raise InvalidArgument(
                f"{what} has no data: send 'data', or binary data with binary_data_size"
            )
    if offset != len(body):
        raise InvalidArgument(
            f"the body has {len(body) - offset} bytes after the JSON header and the declared "
            "binary inputs (binary_data_size values and the body disagree)"
        )
    _requested_outputs(request, doc)
    binary_default, binary_by_output = _binary_outputs(doc)
    return HttpInferRequest(request, binary_default, binary_by_output)


def _requested_outputs(request: pb.ModelInferRequest, doc: dict[str, Any]) -> None:
    outputs = doc.get("outputs")
    if outputs is None:
        return
    if not isinstance(outputs, list):
        raise InvalidArgument("'outputs' must be a list of {\"name\": ...} objects")
    for index, item in enumerate(outputs):
        tensor = _object(item, f"outputs[{index}]")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"outputs[{index}] needs a 'name' string")
        entry = request.outputs.add(name=name)
        parameters_from_json(
            entry.parameters, tensor.get("parameters"), f"output {name!r}", BINARY_PARAMETERS
        )


def _binary_outputs(doc: dict[str, Any]) -> tuple[bool, dict[str, bool]]:
    """(request-wide ``binary_data_output``, per-output ``binary_data``) from the JSON header."""
    wide = _flag(doc.get("parameters"), "binary_data_output", "request") or False
    per: dict[str, bool] = {}
    for item in doc.get("outputs") or ():
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            flag = _flag(item.get("parameters"), "binary_data", f"output {item['name']!r}")
            if flag is not None:
                per[item["name"]] = flag
    return wide, per


# ---------------------------------------------------------------------------------------------
# infer response: ModelInferResponse -> HTTP


def _json_values(array: np.ndarray, what: str) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype == object:
        return [
            item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            for item in flat.tolist()
        ]
    return flat.tolist()


def infer_response_to_http(
    response: pb.ModelInferResponse,
    *,
    binary_default: bool = False,
    binary_by_output: Mapping[str, bool] | None = None,
) -> HttpBody:
    """The HTTP answer to an infer: JSON ``data``, or binary tensors after a JSON header."""
    per = binary_by_output or {}
    raws = response.raw_output_contents
    if len(raws) != len(response.outputs):
        arrays = codec.decode_response_outputs(response)
        pairs = zip(response.outputs, arrays, strict=True)
        raws = [codec.encode_output(t.name, a)[1] for t, a in pairs]
    header: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        header["model_version"] = response.model_version
    if response.id:
        header["id"] = response.id
    if len(response.parameters):
        header["parameters"] = parameters_to_json(response.parameters)
    outputs: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    for tensor, raw in zip(response.outputs, raws, strict=True):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        params = parameters_to_json(tensor.parameters) if len(tensor.parameters) else {}
        if codec.SHM_REGION in params:
            # written into the client's region: name, datatype and shape only, as Triton
            # answers (its C++ client, perf_analyzer's, reads any output "parameters" as
            # binary data and fails without binary_data_size)
            params = {}
        elif per.get(tensor.name, binary_default):
            params["binary_data_size"] = len(raw)
            binaries.append(raw)
        else:
            array = codec.decode_output(tensor, raw)
            entry["data"] = _json_values(array, f"output {tensor.name!r}")
        if params:
            entry["parameters"] = params
        outputs.append(entry)
    header["outputs"] = outputs
    head = dumps(header)
    if not binaries:
        return HttpBody(head, JSON_CONTENT_TYPE)
    return HttpBody(b"".join([head, *binaries]), BINARY_CONTENT_TYPE, len(head))


# ---------------------------------------------------------------------------------------------
# system shared memory: register body and status list

_UINT64_LIMIT = 2**64


def _byte_count(doc: dict[str, Any], key: str, what: str, default: int | None) -> int:
    value = doc.get(key, default)
    if value is None:
        raise InvalidArgument(f"{what} needs a {key!r} field (bytes, an integer)")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UINT64_LIMIT:
        raise InvalidArgument(f"{what}: {key!r} must be a non-negative integer, got {value!r}")
    return value


def shm_register_from_json(name: str, doc: dict[str, Any]) -> pb.SystemSharedMemoryRegisterRequest:
    """The register request of ``POST v2/systemsharedmemory/region/{name}/register``.

    The body is Triton's ``{"key": $string, "offset": $number, "byte_size": $number}``;
    ``offset`` is optional (0), ``key`` and ``byte_size`` are required.
    """
    what = f"shared-memory region {name!r} register body"
    key = doc.get("key")
    if not isinstance(key, str):
        raise InvalidArgument(f"{what} needs a 'key' string (a POSIX shared-memory name)")
    return pb.SystemSharedMemoryRegisterRequest(
        name=name,
        key=key,
        offset=_byte_count(doc, "offset", what, 0),
        byte_size=_byte_count(doc, "byte_size", what, None),
    )


def shm_status_to_json(regions: Sequence[RegionStatus]) -> list[dict[str, Any]]:
    """Triton's status answer: ``[{"name", "key", "offset", "byte_size"}, ...]``."""
    return [region._asdict() for region in regions]


# ---------------------------------------------------------------------------------------------
# other messages: protobuf -> Triton's JSON (proto field names, int64 as numbers, enum names)

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _field_value(field: FieldDescriptor, value: Any, messages: bool) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_json(value, all_messages=messages)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.decode("utf-8", "replace")
    return value


def message_to_json(message: Message, *, all_messages: bool = False) -> dict[str, Any]:
    """A protobuf message as Triton's HTTP JSON: numbers stay numbers, enums are names.

    ``json_format.MessageToDict`` writes int64 fields as strings; Triton's HTTP API (and
    perf_analyzer reading ``dims`` and statistics) needs them as JSON numbers. Scalars are
    written even when zero, as Triton does; unset sub-messages only with ``all_messages``
    (statistics, whose readers expect every ``{count, ns}``; a config must not grow blocks
    such as ``sequence_batching`` that change what clients infer from it).
    """
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            value = getattr(message, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                out[field.name] = {
                    str(k): _field_value(value_field, v, all_messages) for k, v in value.items()
                }
            else:
                out[field.name] = [_field_value(field, v, all_messages) for v in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if all_messages or message.HasField(field.name):
                out[field.name] = _field_value(field, getattr(message, field.name), all_messages)
        elif field.containing_oneof is None or message.HasField(field.name):
            out[field.name] = _field_value(field, getattr(message, field.name), all_messages)
    return out
