"""BentoML-style HTTP for Service APIs: ``POST /{api_name}`` and an OpenAPI ``/docs.json``.

As ``bentoml serve`` answers: a ``NumpyNdarray`` API takes its array as a JSON list and
answers one (``curl -X POST -H 'Content-Type: application/json' -d '[[5.1, 3.5, 1.4, 0.2]]'
http://host:8000/classify``). A descriptor that travels as one BYTES tensor (text, JSON,
files: a ``media_type`` and ``wire_specs``) gets the body as it came, with its Content-Type as
the tensor's ``content_type`` parameter, and answers its output's bytes with its media type;
``multipart/form-data`` carries one part per tensor, named by the part. The call goes through
the gateway's data plane as a model request named by the API, so admission, metrics and the
API's own statistics see it like a gRPC call. Errors answer ``{"error": reason}`` with the
status of protos.status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from protos import codec, http_codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, Unimplemented
from protos.http_server import PROTOCOL, json_response

__all__ = ["add_service_routes", "openapi_document", "api_route"]

_Infer = Callable[..., Awaitable[bytes]]
_JSON = http_codec.JSON_CONTENT_TYPE


def api_route(api: Any) -> str:
    """The API's HTTP path: its ``route`` when it declares one, else ``/{name}``."""
    route = getattr(api, "route", None) or api.name
    return route if route.startswith("/") else f"/{route}"


def _tensor_specs(descriptor: Any, role: str) -> list[dict[str, Any]]:
    """The tensors a descriptor travels as: ``wire_specs`` where it has them, else its spec.

    A spec with datatype BYTES carries the HTTP body as it came (with its ``content_type``);
    any other (NumpyNdarray: a numeric datatype, or None = any) carries a JSON list.
    """
    if hasattr(descriptor, "wire_specs"):
        return list(descriptor.wire_specs(role))
    if hasattr(descriptor, "to_spec"):
        spec = dict(descriptor.to_spec(f"{role}__0"))
        if getattr(descriptor, "media_type", None):
            spec.setdefault("content_type", descriptor.media_type)
        return [spec]
    raise Unimplemented(f"IO descriptor {type(descriptor).__name__} has no wire form")


def _is_bytes(spec: Mapping[str, Any]) -> bool:
    return spec.get("datatype") == "BYTES"


def _array_from_json(spec: Mapping[str, Any], data: bytes, what: str) -> np.ndarray:
    doc = http_codec.parse_json(data, what)
    dtype = None
    if spec.get("datatype"):
        dtype = codec.datatype_to_numpy(spec["datatype"], what=what)
    try:
        array = np.asarray(doc, dtype=dtype)
    except (TypeError, ValueError) as exc:
        kind = f" of {spec['datatype']}" if spec.get("datatype") else ""
        raise InvalidArgument(f"{what}: the body is not an array{kind}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise InvalidArgument(f"{what}: expected a JSON array of numbers or booleans")
    return array


def _bytes_element(data: bytes) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = data
    return out


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def _request_tensors(
    request: web.Request, specs: list[dict[str, Any]], api_name: str
) -> list[tuple[str, np.ndarray, str]]:
    """(name, array, content type) per input tensor, from the body (multipart: per part)."""
    if _media(request.content_type) == "multipart/form-data":
        by_name = {spec["name"]: spec for spec in specs}
        parts: list[tuple[str, np.ndarray, str]] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name not in by_name:
                got = getattr(part, "name", None)
                raise InvalidArgument(
                    f"API {api_name}: unexpected part {got!r}; parts: {sorted(by_name)}"
                )
            name = str(part.name)
            data = bytes(await part.read())
            media = _media(part.headers.get("Content-Type"))
            spec = by_name[name]
            if _is_bytes(spec):
                parts.append((name, _bytes_element(data), media))
            else:
                parts.append((name, _array_from_json(spec, data, f"API {api_name} {name}"), ""))
        return parts
    if len(specs) != 1:
        raise InvalidArgument(
            f"API {api_name} takes {len(specs)} parts: send multipart/form-data with parts "
            f"{[s['name'] for s in specs]}"
        )
    (spec,) = specs
    body = await request.read()
    media = _media(request.content_type)
    if _is_bytes(spec):
        return [(spec["name"], _bytes_element(body), media or spec.get("content_type") or "")]
    if media not in (_JSON, "application/x-www-form-urlencoded", "application/octet-stream", ""):
        raise InvalidArgument(
            f"API {api_name} takes {_JSON} (a JSON list), not Content-Type {media!r}"
        )
    return [(spec["name"], _array_from_json(spec, body, f"API {api_name}"), "")]


def _answer(response: pb.ModelInferResponse, descriptor: Any) -> web.Response:
    """The HTTP body of an API's answer: JSON list, raw bytes, or multipart for several."""
    arrays = codec.decode_response_outputs(response)
    specs = {s["name"]: s for s in _tensor_specs(descriptor, "output")}
    fallback = getattr(descriptor, "media_type", None) or "application/octet-stream"

    def content_type(tensor: Any) -> str:
        if "content_type" in tensor.parameters:
            return str(tensor.parameters["content_type"].string_param)
        return str(specs.get(tensor.name, {}).get("content_type") or fallback)

    def body(tensor: Any, array: np.ndarray) -> tuple[bytes, str]:
        if tensor.datatype == "BYTES" and array.size == 1:
            value = array.reshape(-1)[0]
            return (value.encode() if isinstance(value, str) else bytes(value)), content_type(
                tensor
            )
        return http_codec.dumps(array.tolist()), _JSON

    if len(arrays) == 1:
        data, media = body(response.outputs[0], arrays[0])
        return web.Response(body=data, content_type=media)
    writer = aiohttp.MultipartWriter("form-data")
    for tensor, array in zip(response.outputs, arrays, strict=True):
        data, media = body(tensor, array)
        part = writer.append(data, {"Content-Type": media})
        part.set_content_disposition("form-data", name=tensor.name)
    return web.Response(body=writer)


def _handler(api: Any, infer: _Infer) -> Callable[[web.Request], Awaitable[web.Response]]:
    specs = _tensor_specs(api.input, "input")  # refuse at start what cannot be served
    _tensor_specs(api.output, "output")

    async def call(request: web.Request) -> web.Response:
        tensors = await _request_tensors(request, specs, api.name)
        message = codec.encode_request(
            api.name, [a for _, a, _ in tensors], input_names=[n for n, _, _ in tensors]
        )
        for entry, (_name, _array, media) in zip(message.inputs, tensors, strict=True):
            if media:
                entry.parameters["content_type"].string_param = media
        payload = await infer(message.SerializeToString(), None, protocol=PROTOCOL)
        return _answer(pb.ModelInferResponse.FromString(payload), api.output)

    return call


def add_service_routes(app: web.Application, apis: Any, infer: _Infer) -> None:
    """Add ``POST`` per API and ``GET /docs.json`` to ``app`` (before it starts)."""
    service = apis.service
    for name in apis.names():
        api = service.apis[name]
        app.router.add_post(api_route(api), _handler(api, infer))
    document = openapi_document(service)

    async def docs(request: web.Request) -> web.Response:
        return json_response(document)

    app.router.add_get("/docs.json", docs)


_JSON_TYPES = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}


def _array_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "number"}
    if spec.get("datatype"):
        kind = codec.datatype_to_numpy(spec["datatype"]).kind
        item = {"type": _JSON_TYPES.get(kind, "string")}
    schema: dict[str, Any] = item
    for dim in reversed(spec.get("shape") or [-1]):
        schema = {"type": "array", "items": schema}
        if dim >= 0:
            schema["minItems"] = schema["maxItems"] = dim
    return schema


def _content(descriptor: Any, role: str) -> dict[str, Any]:
    """OpenAPI ``content`` of a descriptor: JSON arrays, its media type, or multipart parts."""
    specs = _tensor_specs(descriptor, role)
    if len(specs) > 1:
        properties = {
            s["name"]: {"type": "string", "format": "binary"} if _is_bytes(s) else _array_schema(s)
            for s in specs
        }
        return {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}}
    (spec,) = specs
    if _is_bytes(spec):
        media = spec.get("content_type") or "application/octet-stream"
        return {media: {"schema": {"type": "string", "format": "binary"}}}
    return {_JSON: {"schema": _array_schema(spec)}}


def _error_schema() -> dict[str, Any]:
    return {
        "description": "the reason",
        "content": {
            _JSON: {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}
        },
    }


def openapi_document(service: Any) -> dict[str, Any]:
    """An OpenAPI 3 document with every API of ``service`` (and the health routes)."""
    paths: dict[str, Any] = {}
    for name in sorted(service.apis):
        api = service.apis[name]
        paths[api_route(api)] = {
            "post": {
                "operationId": name,
                "summary": (api.func.__doc__ or f"Service API {name}").strip().splitlines()[0],
                "tags": ["Service APIs"],
                "requestBody": {"required": True, "content": _content(api.input, "input")},
                "responses": {
                    "200": {
                        "description": "the API's output",
                        "content": _content(api.output, "output"),
                    },
                    "400": _error_schema(),
                    "429": _error_schema(),
                    "500": _error_schema(),
                    "503": _error_schema(),
                },
            }
        }
    for route, what in (("/livez", "alive"), ("/readyz", "ready to serve")):
        paths[route] = {
            "get": {
                "tags": ["Infrastructure"],
                "responses": {"200": {"description": what}, "503": {"description": "not"}},
            }
        }
    return {
        "openapi": "3.0.2",
        "info": {"title": service.name, "version": "0.1.0"},
        "paths": paths,
    }
