"""The gateway's HTTP/REST v2 backend: the gateway's data plane, answered in protobuf messages.

Inference goes through the same admission, routing, forwarding and metrics as gRPC
(``infer(request_bytes, deadline_s, protocol=...) -> bytes``); only the HTTP edge decodes
tensors, because JSON needs them (binary outputs are copied out of the worker's answer).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from protos import grpc_service_pb2 as pb
from protos.http_server import PROTOCOL

__all__ = ["GatewayPlane", "GatewayHttpBackend"]


class GatewayPlane(Protocol):
    """What the HTTP front door needs from the gateway's transport-neutral data plane.

    Methods other than ``infer``, ``statistics``, ``load`` and ``unload`` may answer directly
    or be coroutines (``_answer`` awaits what needs it).
    """

    async def infer(
        self, request: bytes, deadline_s: float | None, *, protocol: str = "grpc"
    ) -> bytes: ...

    def server_ready(self) -> Any: ...

    def server_metadata(self) -> Any: ...

    def model_ready(self, name: str, version: str) -> Any: ...

    def model_metadata(self, name: str, version: str) -> Any: ...

    def model_config(self, name: str, version: str) -> Any: ...

    async def statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse: ...

    def repository_index(self, ready: bool) -> Any: ...

    async def load(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None: ...

    async def unload(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None: ...


async def _answer(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


REPOSITORY_TIMEOUT_S = 300.0  # a model load may download and warm up; gRPC's default too


class GatewayHttpBackend:
    """A ``protos.http_server.V2Backend`` over the gateway's data plane."""

    def __init__(self, plane: GatewayPlane) -> None:
        self._plane = plane

    async def server_ready(self) -> bool:
        return await _answer(self._plane.server_ready())

    async def server_metadata(self) -> pb.ServerMetadataResponse:
        return await _answer(self._plane.server_metadata())

    async def model_ready(self, name: str, version: str) -> bool:
        return await _answer(self._plane.model_ready(name, version))

    async def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        return await _answer(self._plane.model_metadata(name, version))

    async def model_config(self, name: str, version: str) -> Any:
        return await _answer(self._plane.model_config(name, version))

    async def model_statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse:
        return await self._plane.statistics(name, version)

    async def infer(
        self, request: pb.ModelInferRequest, deadline_s: float | None, traceparent: str | None
    ) -> pb.ModelInferResponse:
        # traceparent: for the plane's tracing (telemetry branch), as gRPC metadata gives it
        payload = await self._plane.infer(
            request.SerializeToString(), deadline_s, protocol=PROTOCOL
        )
        return pb.ModelInferResponse.FromString(payload)

    async def repository_index(self, ready: bool) -> pb.RepositoryIndexResponse:
        return await _answer(self._plane.repository_index(ready))

    async def load(self, request: pb.RepositoryModelLoadRequest) -> None:
        await self._plane.load(request.model_name, request.parameters, REPOSITORY_TIMEOUT_S)

    async def unload(self, request: pb.RepositoryModelUnloadRequest) -> None:
        await self._plane.unload(request.model_name, request.parameters, REPOSITORY_TIMEOUT_S)
