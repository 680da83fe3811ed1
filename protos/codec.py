"""The only wire <-> numpy conversion for Open Inference Protocol tensors, with one dtype table.

Decoding is zero-copy where it can be: a fixed-width raw tensor becomes ``np.frombuffer`` over
the request's bytes, so the array is **read-only** (copy it before writing in place). Typed
``contents`` are accepted on input; outputs are always encoded raw (one ``raw_output_contents``
entry per output, in order), because ``tritonclient`` decodes nothing else. BYTES elements travel
as a 4-byte little-endian length followed by the bytes, row-major. Every malformed tensor raises
``protos.errors.InvalidArgument`` with a message that says what to fix.

Hostile input is refused in O(1) before any per-element, per-row or per-chunk work:
``check_request_limits`` (run first by ``decode_request_inputs``) bounds the inputs, each
tensor's rank, each element count, the rows (dim 0) and, for a tensor that carries no
elements at all, every dimension: a 34-byte request of shape ``[1073741824, 0]`` declares a
billion rows it sent no bytes for, and whatever a process does per row (split into chunks,
queue, allocate outputs) would be work proportional to a number the caller chose rather than
to the bytes it sent. ``parse_infer_request`` turns unparseable bytes into INVALID_ARGUMENT.

System shared memory: a tensor whose parameters name ``shared_memory_region`` (with
``shared_memory_byte_size`` and optional ``shared_memory_offset``) carries no bytes on the
wire. Given a ``protos.shm.SharedMemoryRegistry``, inputs are read straight from the region's
read-only mapping (``np.frombuffer``, no copy) and requested outputs are written into their
region (one copy) with an empty ``raw_output_contents`` entry, so entries stay one per output.
Raw entries then belong, in order, to the inputs that are not in shared memory (as
``tritonclient`` sends them).

The gateway's shared-memory hop (``api_gateway/shm_hop.py``) adds request parameters
``HOP_REGION`` (a region registered at this worker) and ``HOP_OFFSET``: every output the
request did not place itself is then written into that region from ``HOP_OFFSET`` on, in order,
each at a 64-byte boundary, while it fits (the rest stay raw), and named in its tensor's
parameters as any shared-memory output is. The gateway copies them back into raw entries.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import sys
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
from google.protobuf.message import DecodeError

from protos import grpc_service_pb2 as pb
from protos.errors import Internal, InvalidArgument, shown
from protos.shm import SharedMemoryRegistry
from protos.wire import append_repeated_bytes, split_repeated_bytes

__all__ = [
    "DATATYPE_TO_NUMPY",
    "DATATYPES",
    "numpy_to_datatype",
    "datatype_to_numpy",
    "DecodeLimits",
    "DEFAULT_LIMITS",
    "MODEL_NAME_REQUIRED",
    "check_request_limits",
    "parse_infer_request",
    "decode_input",
    "decode_request_inputs",
    "encode_output",
    "encode_input",
    "encode_response",
    "encode_request",
    "decode_output",
    "decode_response_outputs",
    "serialize_bytes_tensor",
    "deserialize_bytes_tensor",
    "shm_reference",
    "SHM_REGION",
    "SHM_BYTE_SIZE",
    "SHM_OFFSET",
    "HOP_REGION",
    "HOP_OFFSET",
    "HOP_ALIGN_BYTES",
    "hop_align",
]

# Tensor parameters of Triton's shared-memory extension.
SHM_REGION = "shared_memory_region"
SHM_BYTE_SIZE = "shared_memory_byte_size"
SHM_OFFSET = "shared_memory_offset"
# Request parameters of the gateway's shared-memory hop: where this request's outputs may go.
HOP_REGION = "runnerfleet_hop_region"
HOP_OFFSET = "runnerfleet_hop_offset"
HOP_ALIGN_BYTES = 64  # tensors in a hop region start at multiples of this (numpy's alignment)

InferInputTensor = pb.ModelInferRequest.InferInputTensor
InferOutputTensor = pb.ModelInferResponse.InferOutputTensor

# The one dtype table. Fixed-width dtypes are explicitly little-endian (the wire byte order).
DATATYPE_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
DATATYPES: tuple[str, ...] = tuple(DATATYPE_TO_NUMPY)
_VALID = ", ".join(DATATYPES)

# numpy (kind, itemsize) -> datatype, for arrays of any byte order.
_KIND_SIZE_TO_DATATYPE: dict[tuple[str, int], str] = {
    (dt.kind, dt.itemsize): name for name, dt in DATATYPE_TO_NUMPY.items() if name != "BYTES"
}

# Typed-contents field per datatype, and the wider numpy dtype that field holds.
_TYPED_FIELD: dict[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}

_LEN = struct.Struct("<I")
_MAX_ELEMENT_BYTES = 0xFFFFFFFF
_BIG_ENDIAN_HOST = sys.byteorder == "big"


# The one answer to a request without a model name, at the gateway and at the worker.
MODEL_NAME_REQUIRED = "model_name is required"


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    """Bounds every request is checked against before any work that grows with its numbers.

    Counts that are backed by bytes (elements of a tensor with data: the byte length is checked
    against the shape first) are bounded by the message size already; these bound what is not.
    """

    max_inputs: int = 64  # input tensors per request
    max_rank: int = 16  # dimensions per tensor
    max_elements: int = 1 << 28  # elements per tensor (the product of its dims)
    max_rows: int = 1 << 20  # dim 0 of every input (a request of more rows is refused)
    max_empty_dim: int = 4096  # any dim of a tensor with no elements (rows without data)
    max_name_chars: int = 256  # model name, version, input names


DEFAULT_LIMITS = DecodeLimits()


def _check_name(what: str, name: str, limits: DecodeLimits) -> None:
    if len(name) > limits.max_name_chars:
        raise InvalidArgument(
            f"{what} {shown(name)} is longer than {limits.max_name_chars} characters"
        )


def check_request_limits(request: Any, limits: DecodeLimits = DEFAULT_LIMITS) -> None:
    """Refuse, in O(inputs x rank), a request whose declared sizes exceed ``limits``.

    Runs before anything reads tensor data or counts rows: names, number of inputs, rank,
    element count (the product is computed with a bound, so a huge shape costs nothing), the
    rows (dim 0), and the dims of tensors that carry no elements. Runs once per request in
    the worker: messages are only formatted for a refusal.
    """
    max_chars = limits.max_name_chars
    if len(request.model_name) > max_chars or len(request.model_version) > max_chars:
        _check_name("model_name", request.model_name, limits)
        _check_name("model_version", request.model_version, limits)
    inputs = request.inputs
    if len(inputs) > limits.max_inputs:
        raise InvalidArgument(
            f"request has {len(inputs)} input tensors; at most {limits.max_inputs} are accepted"
        )
    max_elements = limits.max_elements
    for tensor in inputs:
        if len(tensor.name) > max_chars:
            _check_name("input name", tensor.name, limits)
        shape = tensor.shape
        if len(shape) > limits.max_rank:
            raise InvalidArgument(
                f"{_input(tensor)}: {len(shape)} dimensions; at most {limits.max_rank} are accepted"
            )
        count = 1
        for dim in shape:
            if dim < 0:
                raise InvalidArgument(
                    f"{_input(tensor)}: shape {list(shape)} has a negative dimension; "
                    "tensors on the wire need concrete, non-negative dims"
                )
            if count <= max_elements:  # stop multiplying once over: O(1) big ints
                count *= dim
        if count > max_elements and 0 in shape:  # a 0 after the product went over the bound
            count = 0
        if count > max_elements:
            raise InvalidArgument(
                f"{_input(tensor)}: shape {list(shape)} has more than {max_elements} elements"
            )
        if shape and shape[0] > limits.max_rows:
            raise InvalidArgument(
                f"{_input(tensor)}: {shape[0]} rows (dim 0) in one request; at most "
                f"{limits.max_rows} are accepted: split the request"
            )
        if count == 0 and shape and max(shape) > limits.max_empty_dim:
            raise InvalidArgument(
                f"{_input(tensor)}: shape {list(shape)} has no elements but declares a "
                f"dimension of {max(shape)}; a tensor without data may declare at most "
                f"{limits.max_empty_dim} (send the data, or 0 rows)"
            )


def _input(tensor: Any) -> str:
    return f"input {shown(tensor.name)}"


def parse_infer_request(data: bytes) -> Any:
    """Serialized bytes -> ModelInferRequest; unparseable bytes are InvalidArgument."""
    try:
        return pb.ModelInferRequest.FromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise InvalidArgument(f"request is not a valid ModelInferRequest: {exc}") from None


_RAW_INPUT_FIELD = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number
_RAW_OUTPUT_FIELD = pb.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number
# below this a request is parsed whole: its copies cost less than cutting it in Python
SPLIT_MIN_BYTES = 64 * 1024


def parse_infer_request_wire(data: bytes) -> tuple[Any, list[memoryview] | None]:
    """Serialized bytes -> (ModelInferRequest, its raw_input_contents as views, or None).

    A request of ``SPLIT_MIN_BYTES`` or more has its raw entries cut out as zero-copy views
    over ``data`` (``protos.wire``), and only the rest is parsed; pass the views to
    ``decode_request_inputs(raws=...)``. None: the request was parsed whole (small, or not
    plain wire format at its top level), and its raw entries are in the message as usual.
    """
    if len(data) >= SPLIT_MIN_BYTES:
        split = split_repeated_bytes(data, _RAW_INPUT_FIELD)
        if split is not None:
            rest, raws = split
            return parse_infer_request(rest), raws
    return parse_infer_request(data), None


def datatype_to_numpy(datatype: str, *, what: str = "tensor") -> np.dtype:
    """The numpy dtype for a wire datatype name; unknown names list the valid ones."""
    dtype = DATATYPE_TO_NUMPY.get(datatype)
    if dtype is None:
        if datatype == "BF16":
            raise InvalidArgument(f"{what}: datatype BF16 is not supported; send FP32 or FP16")
        raise InvalidArgument(
            f"{what}: unknown datatype {shown(datatype)}; valid datatypes: {_VALID}"
        )
    return dtype


def numpy_to_datatype(dtype: Any) -> str:
    """The wire datatype name for a numpy dtype (any byte order; str/bytes/object -> BYTES)."""
    if isinstance(dtype, np.dtype):  # every request's arrays: one dict lookup, no np.dtype()
        known = _DATATYPE_OF_DTYPE.get(dtype)
        if known is not None:
            return known
        name = _datatype_of(dtype)
        if len(_DATATYPE_OF_DTYPE) < 64:  # bounded: dtypes come from code, not from the wire
            _DATATYPE_OF_DTYPE[dtype] = name
        return name
    return _datatype_of(dtype)


_DATATYPE_OF_DTYPE: dict[np.dtype, str] = {}


def _datatype_of(dtype: Any) -> str:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidArgument(f"{dtype!r} is not a numpy dtype: {exc}") from None
    if dt.kind in "OSU":
        return "BYTES"
    name = _KIND_SIZE_TO_DATATYPE.get((dt.kind, dt.itemsize))
    if name is None:
        raise InvalidArgument(
            f"numpy dtype {dt} has no Open Inference Protocol datatype; use bool, "
            "(u)int8-64, float16/32/64, or str/bytes/object for BYTES"
        )
    return name


# ---------------------------------------------------------------------------------------------
# BYTES element encoding


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    """Row-major BYTES wire form: per element a 4-byte little-endian length, then the bytes."""
    parts: list[bytes] = []
    append = parts.append
    pack = _LEN.pack
    for index, item in enumerate(array.ravel(order="C").tolist()):
        if isinstance(item, bytes):
            data = item
        elif isinstance(item, bytearray | memoryview):
            data = bytes(item)
        else:  # str, or numbers in object arrays (as tritonclient does)
            text = item if isinstance(item, str) else str(item)
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidArgument(
                    f"BYTES element {index} cannot be encoded as UTF-8 ({exc.reason}); "
                    "pass bytes for binary data"
                ) from None
        if len(data) > _MAX_ELEMENT_BYTES:
            raise InvalidArgument(
                f"BYTES element {index} of {len(data)} bytes exceeds the 4 GiB limit"
            )
        append(pack(len(data)))
        append(data)
    return b"".join(parts)


def deserialize_bytes_tensor(
    raw: bytes | memoryview, count: int, *, what: str = "tensor"
) -> np.ndarray:
    """Parse ``count`` length-prefixed BYTES elements into a flat object array of bytes."""
    data = raw if isinstance(raw, bytes) else bytes(raw)
    size = len(data)
    if count > size // 4:  # every element needs at least its 4-byte prefix; check before allocating
        raise InvalidArgument(
            f"{what}: raw content is {size} bytes but {count} BYTES elements need at least "
            f"{4 * count} bytes (a 4-byte little-endian length prefix each)"
        )
    out = np.empty(count, dtype=object)
    unpack = _LEN.unpack_from
    offset = 0
    for i in range(count):
        if offset + 4 > size:
            raise InvalidArgument(
                f"{what}: BYTES element {i} length prefix at byte {offset} runs past the end "
                f"of the {size}-byte raw content"
            )
        (length,) = unpack(data, offset)
        offset += 4
        end = offset + length
        if end > size:
            raise InvalidArgument(
                f"{what}: BYTES element {i} declares {length} bytes at byte {offset} but only "
                f"{size - offset} bytes remain in the {size}-byte raw content"
            )
        out[i] = data[offset:end]
        offset = end
    if offset != size:
        raise InvalidArgument(
            f"{what}: raw content is {size} bytes but its {count} BYTES elements end at byte "
            f"{offset}; {size - offset} bytes left over (shape and data disagree)"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Decoding (wire -> numpy)


def _shape_and_count(tensor: Any, what: str) -> tuple[tuple[int, ...], int]:
    shape = tuple(tensor.shape)
    for dim in shape:
        if dim < 0:
            raise InvalidArgument(
                f"{what}: shape {list(shape)} has a negative dimension; "
                "tensors on the wire need concrete, non-negative dims"
            )
    return shape, math.prod(shape)


def _decode_raw(
    datatype: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    count: int,
    raw: bytes | memoryview,
    what: str,
) -> np.ndarray:
    if datatype == "BYTES":
        return deserialize_bytes_tensor(raw, count, what=what).reshape(shape)
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise InvalidArgument(
            f"{what}: raw content is {len(raw)} bytes but shape {list(shape)} of {datatype} "
            f"needs {needed} bytes"
        )
    if datatype == "BOOL":
        as_u8 = np.frombuffer(raw, dtype=np.uint8)
        if count and as_u8.max() > 1:  # non-canonical true bytes: normalise (one copy)
            normalised: np.ndarray = as_u8 != 0
            return normalised.reshape(shape)
        return as_u8.view(np.bool_).reshape(shape)
    arr = np.frombuffer(raw, dtype=dtype)
    if _BIG_ENDIAN_HOST:  # pragma: no cover - every supported host is little-endian
        arr = arr.astype(dtype.newbyteorder("="))
    return arr.reshape(shape)


def _decode_typed(
    datatype: str, dtype: np.dtype, shape: tuple[int, ...], count: int, contents: Any, what: str
) -> np.ndarray:
    typed = _TYPED_FIELD.get(datatype)
    present = [field.name for field, _ in contents.ListFields()]
    if typed is None:
        raise InvalidArgument(
            f"{what}: {datatype} has no typed contents field; send it in raw_input_contents"
        )
    field_name, wide = typed
    stray = [name for name in present if name != field_name]
    if stray:
        raise InvalidArgument(
            f"{what}: datatype {datatype} takes its data in contents.{field_name}, "
            f"but contents.{stray[0]} is set"
        )
    values = getattr(contents, field_name)
    if len(values) != count:
        raise InvalidArgument(
            f"{what}: contents.{field_name} has {len(values)} elements but shape {list(shape)} "
            f"needs {count}"
        )
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    arr = np.fromiter(values, dtype=wide, count=count)
    if wide != dtype and datatype != "BOOL":
        info = np.iinfo(dtype)
        if count and (arr.min() < info.min or arr.max() > info.max):
            raise InvalidArgument(
                f"{what}: contents.{field_name} holds values outside the {datatype} range "
                f"[{info.min}, {info.max}]"
            )
        arr = arr.astype(dtype)
    return arr.reshape(shape)


def _has_typed(tensor: Any) -> bool:
    return bool(tensor.HasField("contents") and tensor.contents.ByteSize() > 0)


def _decode_tensor(tensor: Any, raw: bytes | memoryview | None, kind: str) -> np.ndarray:
    what = f"{kind} {shown(tensor.name)}"
    datatype = tensor.datatype
    dtype = datatype_to_numpy(datatype, what=what)
    shape, count = _shape_and_count(tensor, what)
    if raw is not None:
        return _decode_raw(datatype, dtype, shape, count, raw, what)
    if _has_typed(tensor):
        return _decode_typed(datatype, dtype, shape, count, tensor.contents, what)
    if count == 0:
        return np.empty(shape, dtype=dtype)
    raise InvalidArgument(
        f"{what}: no data; send it in raw_input_contents or in the tensor's typed contents"
    )


def decode_input(tensor: Any, raw: bytes | None) -> np.ndarray:
    """One input tensor as numpy: from ``raw`` when given (zero-copy, read-only), else typed."""
    return _decode_tensor(tensor, raw, "input")


def decode_output(tensor: Any, raw: bytes | None) -> np.ndarray:
    """One output tensor as numpy (as ``decode_input``, with 'output' in error messages)."""
    return _decode_tensor(tensor, raw, "output")


def _int_param(params: Any, key: str, what: str) -> int | None:
    if key not in params:
        return None
    param = params[key]
    choice = param.WhichOneof("parameter_choice")
    if choice not in ("int64_param", "uint64_param"):
        raise InvalidArgument(f"{what}: parameter {key!r} must be an integer")
    value = int(getattr(param, choice))
    if value < 0:
        raise InvalidArgument(f"{what}: parameter {key!r} must not be negative, got {value}")
    return value


def shm_reference(tensor: Any, kind: str = "input") -> tuple[str, int, int] | None:
    """(region, offset, byte_size) when ``tensor`` names a shared-memory region, else None."""
    params = tensor.parameters
    if SHM_REGION not in params:
        return None
    what = f"{kind} {tensor.name!r}"
    region_param = params[SHM_REGION]
    if region_param.WhichOneof("parameter_choice") != "string_param":
        raise InvalidArgument(f"{what}: parameter {SHM_REGION!r} must be a string")
    byte_size = _int_param(params, SHM_BYTE_SIZE, what)
    if byte_size is None:
        raise InvalidArgument(
            f"{what}: names shared-memory region {region_param.string_param!r} but no "
            f"{SHM_BYTE_SIZE!r} parameter"
        )
    offset = _int_param(params, SHM_OFFSET, what) or 0
    return region_param.string_param, offset, byte_size


def _decode_shm(tensor: Any, ref: tuple[str, int, int], shm: SharedMemoryRegistry) -> np.ndarray:
    """One input read from its region: zero-copy and read-only for fixed-width datatypes."""
    what = f"input {tensor.name!r}"
    name, offset, byte_size = ref
    datatype = tensor.datatype
    dtype = datatype_to_numpy(datatype, what=what)
    shape, count = _shape_and_count(tensor, what)
    if datatype != "BYTES" and byte_size != count * dtype.itemsize:
        raise InvalidArgument(
            f"{what}: {SHM_BYTE_SIZE}={byte_size} but shape {list(shape)} of {datatype} "
            f"needs {count * dtype.itemsize} bytes"
        )
    view = shm.get(name, what=what).read(offset, byte_size, what=what)
    return _decode_raw(datatype, dtype, shape, count, view, what)


def _decode_all(
    tensors: Sequence[Any],
    raws: Sequence[bytes | memoryview],
    kind: str,
    raw_field: str,
) -> list[np.ndarray]:
    if len(raws) == 0:
        return [_decode_tensor(t, None, kind) for t in tensors]
    if len(raws) != len(tensors):
        raise InvalidArgument(
            f"{len(raws)} {raw_field} entries for {len(tensors)} {kind}s; send exactly one "
            f"entry per {kind}, in the order of `{kind}s`"
        )
    for t in tensors:
        if _has_typed(t):
            raise InvalidArgument(
                f"{kind} {t.name!r} has typed contents while the message uses {raw_field}; "
                "send all tensors raw or all typed, not a mix"
            )
    return [_decode_tensor(t, r, kind) for t, r in zip(tensors, raws, strict=True)]


def _decode_with_shm(
    inputs: Sequence[Any], raws: Sequence[bytes | memoryview], shm: SharedMemoryRegistry | None
) -> list[np.ndarray]:
    refs = [shm_reference(t) for t in inputs]
    if shm is None:
        named = next(t.name for t, r in zip(inputs, refs, strict=True) if r is not None)
        raise InvalidArgument(
            f"input {named!r} names a shared-memory region, but this endpoint has no shared "
            "memory; send the tensor's bytes"
        )
    plain = [t for t, r in zip(inputs, refs, strict=True) if r is None]
    decoded = iter(_decode_all(plain, raws, "input", "raw_input_contents") if plain else [])
    if not plain and len(raws):
        raise InvalidArgument(
            f"{len(raws)} raw_input_contents entries but every input is in shared memory"
        )
    return [
        next(decoded) if ref is None else _decode_shm(t, ref, shm)
        for t, ref in zip(inputs, refs, strict=True)
    ]


def decode_request_inputs(
    request: Any,
    shm: SharedMemoryRegistry | None = None,
    limits: DecodeLimits | None = DEFAULT_LIMITS,
    raws: Sequence[bytes | memoryview] | None = None,
) -> list[np.ndarray]:
    """All inputs of a ModelInferRequest as numpy, in the order of ``inputs``.

    ``check_request_limits`` runs first, so nothing is decoded for a request over ``limits``
    (``None``: the caller has just run it itself, so it is not run twice).
    Inputs naming a shared-memory region are read from ``shm`` (zero-copy); the raw entries
    then belong, in order, to the other inputs. ``raws``: the raw entries, when
    ``parse_infer_request_wire`` cut them out of the message.
    """
    if limits is not None:
        check_request_limits(request, limits)
    inputs = request.inputs
    seen: set[str] = set()
    uses_shm = False
    for t in inputs:
        if t.name in seen:
            raise InvalidArgument(f"input {shown(t.name)} appears more than once in the request")
        seen.add(t.name)
        uses_shm = uses_shm or SHM_REGION in t.parameters
    if raws is None:
        raws = request.raw_input_contents
    if uses_shm:
        return _decode_with_shm(inputs, raws, shm)
    return _decode_all(inputs, raws, "input", "raw_input_contents")


def decode_response_outputs(response: Any) -> list[np.ndarray]:
    """All outputs of a ModelInferResponse as numpy, in the order of ``outputs``."""
    for t in response.outputs:
        if SHM_REGION in t.parameters:
            raise InvalidArgument(
                f"output {t.name!r} was written to shared-memory region "
                f"{t.parameters[SHM_REGION].string_param!r}; read it from there"
            )
    return _decode_all(
        response.outputs, response.raw_output_contents, "output", "raw_output_contents"
    )


# ---------------------------------------------------------------------------------------------
# Encoding (numpy -> wire, always raw)


def _as_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:  # ragged lists, grad tensors
        raise InvalidArgument(
            f"{what}: cannot convert {type(value).__name__} to an array: {exc}"
        ) from None


def _array_to_wire(array: Any, what: str) -> tuple[str, tuple[int, ...], bytes]:
    """(datatype, shape, raw little-endian row-major bytes) for any array-like."""
    arr = _as_array(array, what)
    dt = arr.dtype
    if dt.kind in "OSU":
        return "BYTES", arr.shape, serialize_bytes_tensor(arr)
    try:
        datatype = numpy_to_datatype(dt)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc.message}") from None
    if dt.byteorder == ">" or (dt.byteorder == "=" and _BIG_ENDIAN_HOST):
        arr = arr.astype(dt.newbyteorder("<"))
    return datatype, arr.shape, arr.tobytes(order="C")  # one copy, C order for any layout


def encode_output(name: str, array: Any) -> tuple[Any, bytes]:
    """One output as (InferOutputTensor, raw bytes): little-endian, row-major, any layout."""
    datatype, shape, raw = _array_to_wire(array, f"output {name!r}")
    return InferOutputTensor(name=name, datatype=datatype, shape=shape), raw


def encode_input(name: str, array: Any) -> tuple[Any, bytes]:
    """One input as (InferInputTensor, raw bytes), for clients."""
    datatype, shape, raw = _array_to_wire(array, f"input {name!r}")
    return InferInputTensor(name=name, datatype=datatype, shape=shape), raw


def _wire_view(array: Any, what: str) -> tuple[str, tuple[int, ...], bytes | memoryview]:
    """As ``_array_to_wire``, but a C-contiguous little-endian array gives a view (no copy)."""
    if (
        isinstance(array, np.ndarray)
        and array.dtype.kind in "biuf"
        and array.flags.c_contiguous
        and array.dtype.byteorder in ("<", "|", "=")
        and not _BIG_ENDIAN_HOST
    ):
        try:
            datatype = numpy_to_datatype(array.dtype)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: {exc.message}") from None
        return datatype, array.shape, array.reshape(-1).view(np.uint8).data
    return _array_to_wire(array, what)


def _encode_to_shm(
    requested: Any, array: Any, ref: tuple[str, int, int], shm: SharedMemoryRegistry
) -> Any:
    """Write one output into its region; the tensor says where, its raw entry stays empty."""
    name, offset, byte_size = ref
    what = f"output {requested.name!r}"
    datatype, shape, data = _wire_view(array, what)
    if len(data) > byte_size:
        raise InvalidArgument(
            f"{what}: needs {len(data)} bytes but its shared-memory region {name!r} gives "
            f"{SHM_BYTE_SIZE}={byte_size}"
        )
    shm.get(name, what=what).write(offset, data, what=what)
    return _shm_output(requested.name, datatype, shape, name, len(data), offset)


def _shm_output(
    name: str, datatype: str, shape: Sequence[int], region: str, byte_size: int, offset: int
) -> Any:
    """An output tensor that names where in ``region`` its bytes were written."""
    tensor = InferOutputTensor(name=name, datatype=datatype, shape=shape)
    tensor.parameters[SHM_REGION].string_param = region
    tensor.parameters[SHM_BYTE_SIZE].int64_param = byte_size
    if offset:
        tensor.parameters[SHM_OFFSET].int64_param = offset
    return tensor


class _HopPlacer:
    """Writes outputs into the gateway's hop region, in order, while they fit."""

    def __init__(self, name: str, region: Any, cursor: int) -> None:
        self._name = name
        self._region = region
        self._cursor = cursor

    @classmethod
    def of(cls, request: Any, shm: SharedMemoryRegistry | None) -> _HopPlacer | None:
        """The placer a request asks for (``HOP_REGION``), or None."""
        params = request.parameters
        if shm is None or HOP_REGION not in params:
            return None
        what = "the gateway's shared-memory hop"
        name = params[HOP_REGION].string_param
        cursor = _int_param(params, HOP_OFFSET, what) or 0
        return cls(name, shm.get(name, what=what), cursor)

    def place(self, name: str, array: Any) -> Any | None:
        """The output tensor naming where ``array`` was written, or None (it does not fit)."""
        what = f"output {name!r}"
        datatype, shape, data = _wire_view(array, what)
        size = len(data)
        if self._cursor + size > self._region.byte_size:
            return None
        self._region.write(self._cursor, data, what=what)
        tensor = _shm_output(name, datatype, shape, self._name, size, self._cursor)
        self._cursor = hop_align(self._cursor + size)
        return tensor


def hop_align(offset: int) -> int:
    """``offset`` rounded up to the next multiple of ``HOP_ALIGN_BYTES``."""
    return -(-offset // HOP_ALIGN_BYTES) * HOP_ALIGN_BYTES


def _response_tensors(
    request: Any,
    arrays: Sequence[Any],
    names: Sequence[str],
    shm: SharedMemoryRegistry | None,
    *,
    views: bool,
) -> tuple[list[Any], list[bytes | memoryview]]:
    """The output tensors answering ``request`` and their raw entries (views: zero-copy)."""
    if len(arrays) != len(names):
        raise Internal(f"model returned {len(arrays)} outputs but {len(names)} names were given")
    pairs: Iterable[tuple[str, Any]] = zip(names, arrays, strict=True)
    requested: dict[str, Any] = {}
    if len(request.outputs):
        by_name = dict(zip(names, arrays, strict=True))
        missing = [o.name for o in request.outputs if o.name not in by_name]
        if missing:
            raise InvalidArgument(
                f"requested output {missing[0]!r} does not exist; outputs: {', '.join(names)}"
            )
        pairs = [(o.name, by_name[o.name]) for o in request.outputs]
        requested = {o.name: o for o in request.outputs}
    tensors = []
    raws: list[bytes | memoryview] = []
    hop = _HopPlacer.of(request, shm)
    for name, array in pairs:
        out = requested.get(name)
        ref = shm_reference(out, "output") if out is not None else None
        if ref is None and hop is not None:
            placed = hop.place(name, array)
            if placed is not None:
                tensors.append(placed)
                raws.append(b"")
                continue
        if ref is not None:
            if shm is None:
                raise InvalidArgument(
                    f"output {name!r} names a shared-memory region, but this endpoint has no "
                    "shared memory"
                )
            tensors.append(_encode_to_shm(out, array, ref, shm))
            raws.append(b"")
            continue
        what = f"output {name!r}"
        datatype, shape, raw = _wire_view(array, what) if views else _array_to_wire(array, what)
        tensors.append(InferOutputTensor(name=name, datatype=datatype, shape=shape))
        raws.append(raw)
    return tensors, raws


def encode_response(
    request: Any,
    arrays: Sequence[Any],
    names: Sequence[str],
    shm: SharedMemoryRegistry | None = None,
) -> Any:
    """A raw ModelInferResponse answering ``request``; keeps only the outputs it asked for.

    Requested outputs that name a shared-memory region are written there (through ``shm``).
    """
    tensors, raws = _response_tensors(request, arrays, names, shm, views=False)
    return pb.ModelInferResponse(
        model_name=request.model_name,
        model_version=request.model_version,
        id=request.id,
        outputs=tensors,
        raw_output_contents=cast(list[bytes], raws),  # views=False: bytes (_array_to_wire)
    )


def encode_response_wire(
    request: Any,
    arrays: Sequence[Any],
    names: Sequence[str],
    shm: SharedMemoryRegistry | None = None,
    *,
    model_name: str,
    model_version: str,
) -> bytes:
    """``encode_response``, serialized, with each output's bytes copied once (not four times).

    The message without its raw entries is serialized by protobuf; the entries are appended
    from views over the output arrays (``protos.wire.append_repeated_bytes``).
    """
    tensors, raws = _response_tensors(request, arrays, names, shm, views=True)
    head = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id, outputs=tensors
    )
    return append_repeated_bytes(head.SerializeToString(), _RAW_OUTPUT_FIELD, raws)


def encode_request(
    model_name: str,
    arrays: Sequence[Any],
    *,
    model_version: str = "",
    method: str | None = None,
    input_names: Sequence[str] | None = None,
    request_id: str = "",
) -> Any:
    """A raw ModelInferRequest for clients; inputs are named ``input__0, ...`` by default."""
    if input_names is None:
        input_names = [f"input__{i}" for i in range(len(arrays))]
    elif len(input_names) != len(arrays):
        raise InvalidArgument(
            f"{len(input_names)} input names given for {len(arrays)} arrays; give one per array"
        )
    tensors = []
    raws = []
    for name, array in zip(input_names, arrays, strict=True):
        tensor, raw = encode_input(name, array)
        tensors.append(tensor)
        raws.append(raw)
    request = pb.ModelInferRequest(
        model_name=model_name,
        model_version=model_version,
        id=request_id,
        inputs=tensors,
        raw_input_contents=raws,
    )
    if method is not None:
        request.parameters["method"].string_param = method
    return request
