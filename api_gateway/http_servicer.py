"""The gateway's HTTP/REST v2 backend: the gateway's data plane, answered in protobuf messages.

Inference goes through the same admission, routing, forwarding and metrics as gRPC
(``infer(request_bytes, deadline_s, protocol=...) -> bytes``); only the HTTP edge decodes
tensors, because JSON needs them (binary outputs are copied out of the worker's answer).
System shared memory goes through the plane too (``shm_register``: every worker, all or none),
so a region registered over HTTP is the one gRPC sees, and the reverse.
"""

from __future__ import annotations

from typing import Any

from api_gateway.plane import GatewayPlane
from protos import grpc_service_pb2 as pb
from protos.http_server import PROTOCOL
from protos.shm import RegionStatus

__all__ = ["GatewayHttpBackend"]


class GatewayHttpBackend:
    """A ``protos.http_server.V2Backend`` over the gateway's data plane."""

    def __init__(self, plane: GatewayPlane) -> None:
        self._plane = plane

    async def server_ready(self) -> bool:
        return self._plane.server_ready()

    async def server_metadata(self) -> pb.ServerMetadataResponse:
        return self._plane.server_metadata()

    async def model_ready(self, name: str, version: str) -> bool:
        return self._plane.model_ready(name, version)

    async def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        return self._plane.model_metadata(name, version)

    async def model_config(self, name: str, version: str) -> Any:
        return self._plane.model_config(name, version)

    async def model_statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse:
        return await self._plane.statistics(name, version)

    async def infer(
        self, request: pb.ModelInferRequest, deadline_s: float | None, traceparent: str | None
    ) -> pb.ModelInferResponse:
        payload = await self._plane.infer(
            request.SerializeToString(), deadline_s, traceparent, protocol=PROTOCOL
        )
        return pb.ModelInferResponse.FromString(payload)

    async def repository_index(self, ready: bool) -> pb.RepositoryIndexResponse:
        return self._plane.repository_index(ready)

    async def load(self, request: pb.RepositoryModelLoadRequest) -> None:
        await self._plane.load(request.model_name, request.parameters, None)

    async def unload(self, request: pb.RepositoryModelUnloadRequest) -> None:
        await self._plane.unload(request.model_name, request.parameters, None)

    async def shm_status(self, name: str) -> list[RegionStatus]:
        return self._plane.shm_status(name)

    async def shm_register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        await self._plane.shm_register(request)

    async def shm_unregister(self, name: str) -> None:
        await self._plane.shm_unregister(name)
