"""BentoML-style HTTP for Service APIs: ``POST /{api_name}`` and an OpenAPI ``/docs.json``.

As ``bentoml serve`` answers: a ``NumpyNdarray`` API takes its array as a JSON list and
answers one (``curl -X POST -H 'Content-Type: application/json' -d '[[5.1, 3.5, 1.4, 0.2]]'
http://host:8000/classify``). The call goes through the gateway's data plane as a model
request named by the API, so admission, metrics and the API's own statistics see it like a
gRPC call. Errors answer ``{"error": reason}`` with the status of protos.status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from protos import codec, http_codec
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, Unimplemented
from protos.http_server import PROTOCOL, json_response
from runnerfleet.sdk.io import NumpyNdarray

__all__ = ["add_service_routes", "openapi_document", "api_route"]

_Infer = Callable[..., Awaitable[bytes]]
_JSON = http_codec.JSON_CONTENT_TYPE
_INPUT = "input__0"


def api_route(api: Any) -> str:
    """The API's HTTP path: its ``route`` when it declares one, else ``/{name}``."""
    route = getattr(api, "route", None) or api.name
    return route if route.startswith("/") else f"/{route}"


def _descriptor_kind(descriptor: Any) -> str:
    if isinstance(descriptor, NumpyNdarray):
        return "ndarray"
    raise Unimplemented(
        f"IO descriptor {type(descriptor).__name__} has no HTTP codec yet; "
        "NumpyNdarray (JSON list) is served"
    )


def _array_from_json(descriptor: NumpyNdarray, doc: Any, api_name: str) -> np.ndarray:
    try:
        array = np.asarray(doc, dtype=descriptor.dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"API {api_name}: the body is not an array"
            f"{' of ' + str(descriptor.dtype) if descriptor.dtype is not None else ''}: {exc}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise InvalidArgument(
            f"API {api_name}: expected a JSON array of numbers or booleans, got {array.dtype}"
        )
    return array


def _handler(api: Any, infer: _Infer) -> Callable[[web.Request], Awaitable[web.Response]]:
    _descriptor_kind(api.input)  # refuse at start what cannot be served
    _descriptor_kind(api.output)

    async def call(request: web.Request) -> web.Response:
        media = (request.content_type or "").lower()
        if media not in (_JSON, "application/x-www-form-urlencoded", "application/octet-stream"):
            raise InvalidArgument(
                f"API {api.name} takes {_JSON} (a JSON list), not Content-Type {media!r}"
            )
        doc = http_codec.parse_json(await request.read())
        array = _array_from_json(api.input, doc, api.name)
        message = codec.encode_request(api.name, [array], input_names=[_INPUT])
        payload = await infer(message.SerializeToString(), None, protocol=PROTOCOL)
        outputs = codec.decode_response_outputs(pb.ModelInferResponse.FromString(payload))
        return json_response(outputs[0].tolist())

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


def _ndarray_schema(descriptor: NumpyNdarray) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "number"}
    if descriptor.dtype is not None:
        item = {"type": _JSON_TYPES.get(descriptor.dtype.kind, "string")}
    schema: dict[str, Any] = item
    dims = descriptor.shape if descriptor.shape is not None else (-1,)
    for dim in reversed(dims):
        schema = {"type": "array", "items": schema}
        if dim >= 0:
            schema["minItems"] = schema["maxItems"] = dim
    return schema


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
        _descriptor_kind(api.input)
        paths[api_route(api)] = {
            "post": {
                "operationId": name,
                "summary": (api.func.__doc__ or f"Service API {name}").strip().splitlines()[0],
                "tags": ["Service APIs"],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ndarray_schema(api.input)}},
                },
                "responses": {
                    "200": {
                        "description": "the API's output",
                        "content": {_JSON: {"schema": _ndarray_schema(api.output)}},
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
