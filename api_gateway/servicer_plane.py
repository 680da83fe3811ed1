"""Temporary: the GatewayPlane that api_gateway/http_servicer.py needs, over GatewayServicer.

The gateway's transport-neutral data plane (api_gateway/plane.py) is being written on another
branch; until it lands this adapter reads the same servicer logic the gRPC rpcs run (their
context argument is unused on these paths), so HTTP answers exactly as gRPC does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api_gateway.servicer import GatewayServicer
from protos import grpc_service_pb2 as pb

__all__ = ["ServicerPlane"]


class ServicerPlane:
    """GatewayPlane over a GatewayServicer."""

    def __init__(self, servicer: GatewayServicer) -> None:
        self._servicer = servicer

    async def infer(
        self, request: bytes, deadline_s: float | None, *, protocol: str = "grpc"
    ) -> bytes:
        return await self._servicer._infer(request, deadline_s, protocol=protocol)

    async def server_ready(self) -> bool:
        reply = await self._servicer.ServerReady(pb.ServerReadyRequest(), None)
        return bool(reply.ready)

    async def server_metadata(self) -> pb.ServerMetadataResponse:
        return await self._servicer.ServerMetadata(pb.ServerMetadataRequest(), None)

    async def model_ready(self, name: str, version: str) -> bool:
        request = pb.ModelReadyRequest(name=name, version=version)
        return bool((await self._servicer.ModelReady(request, None)).ready)

    async def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        request = pb.ModelMetadataRequest(name=name, version=version)
        return await self._servicer.ModelMetadata(request, None)

    async def model_config(self, name: str, version: str) -> Any:
        request = pb.ModelConfigRequest(name=name, version=version)
        return (await self._servicer.ModelConfig(request, None)).config

    async def statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse:
        request = pb.ModelStatisticsRequest(name=name, version=version)
        return await self._servicer.ModelStatistics(request, None)

    async def repository_index(self, ready: bool) -> pb.RepositoryIndexResponse:
        request = pb.RepositoryIndexRequest(ready=ready)
        return await self._servicer.RepositoryIndex(request, None)

    async def load(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None:
        request = pb.RepositoryModelLoadRequest(model_name=name)
        for key, value in parameters.items():
            request.parameters[key].CopyFrom(value)
        await self._servicer._repository.load(request, timeout_s)

    async def unload(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        for key, value in parameters.items():
            request.parameters[key].CopyFrom(value)
        await self._servicer._repository.unload(request, timeout_s)
