"""The gateway's inference.GRPCInferenceService: protobuf in, call the plane, protobuf out.

No policy here: admission, routing, version choice and statistics live in
``api_gateway/plane.py`` (shared with any other front door); errors become status codes
through ``protos.status.aborts_on_error`` only. ModelInfer and ModelStreamInfer take the raw
request bytes (no deserializer) and return the worker's response bytes as they came (no
serializer): the gateway never decodes tensors.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from api_gateway.header import parse_request_header, wrap_stream_response
from api_gateway.plane import GatewayPlane
from protos import grpc_service_pb2 as pb
from protos.cuda_shm import CudaSharedMemoryRefusal
from protos.errors import InvalidArgument, RunnerFleetError
from protos.parse_guard import guard_handlers
from protos.runtime_settings import RuntimeSettings, RuntimeSettingsRpcs
from protos.status import aborts_on_error
from protos.stream import answer_stream
from protos.tracing import traceparent_from_metadata

__all__ = ["GatewayServicer", "SERVICE_NAME", "generic_handler"]

SERVICE_NAME = "inference.GRPCInferenceService"


class GatewayServicer(CudaSharedMemoryRefusal, RuntimeSettingsRpcs):
    """Every rpc of inference.GRPCInferenceService, each one call into the data plane (trace
    and log settings: into the gateway process's own, ``protos.runtime_settings``)."""

    def __init__(self, plane: GatewayPlane, runtime: RuntimeSettings) -> None:
        self._plane = plane
        self._runtime = runtime

    # -- inference (hot path) -------------------------------------------------------------

    @aborts_on_error
    async def ModelInfer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._plane.infer(request, _deadline_s(context), _traceparent(context))

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        deadline_s = _deadline_s(context)
        traceparent = _traceparent(context)

        async def answer(raw: bytes) -> bytes:
            try:
                return wrap_stream_response(await self._plane.infer(raw, deadline_s, traceparent))
            except RunnerFleetError as exc:
                return _stream_error(raw, exc)

        async for item in answer_stream(request_iterator, answer):
            yield item

    # -- server and model state -----------------------------------------------------------

    @aborts_on_error
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @aborts_on_error
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._plane.server_ready())

    @aborts_on_error
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        return self._plane.server_metadata()

    @aborts_on_error
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._plane.model_ready(request.name, request.version))

    @aborts_on_error
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        return self._plane.model_metadata(request.name, request.version)

    @aborts_on_error
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Any
    ) -> pb.ModelConfigResponse:
        return pb.ModelConfigResponse(
            config=self._plane.model_config(request.name, request.version)
        )

    # -- statistics and repository --------------------------------------------------------

    @aborts_on_error
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        return await self._plane.statistics(request.name, request.version)

    @aborts_on_error
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        return self._plane.repository_index(request.ready)

    @aborts_on_error
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        await self._plane.load(request.model_name, request.parameters, _timeout_s(context))
        return pb.RepositoryModelLoadResponse()

    @aborts_on_error
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self._plane.unload(request.model_name, request.parameters, _timeout_s(context))
        return pb.RepositoryModelUnloadResponse()

    # -- system shared memory (registered at every worker: same host) --------------------

    @aborts_on_error
    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: Any
    ) -> pb.SystemSharedMemoryStatusResponse:
        response = pb.SystemSharedMemoryStatusResponse()
        for region in self._plane.shm_status(request.name):
            entry = response.regions[region.name]
            entry.name, entry.key, entry.offset, entry.byte_size = region
        return response

    @aborts_on_error
    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: Any
    ) -> pb.SystemSharedMemoryRegisterResponse:
        await self._plane.shm_register(request)
        return pb.SystemSharedMemoryRegisterResponse()

    @aborts_on_error
    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: Any
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        await self._plane.shm_unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()


def _traceparent(context: Any) -> str | None:
    """The client's W3C ``traceparent`` from the call's metadata, if it sent one."""
    return traceparent_from_metadata(context.invocation_metadata())


def _stream_error(raw: bytes, error: RunnerFleetError) -> bytes:
    """Triton's stream wrapper for a failed request, naming its model and id when readable."""
    wrapper = pb.ModelStreamInferResponse(error_message=error.message)
    try:
        header = parse_request_header(raw)
    except InvalidArgument:
        return wrapper.SerializeToString()
    wrapper.infer_response.model_name = header.model_name
    wrapper.infer_response.model_version = header.model_version
    wrapper.infer_response.id = header.request_id
    return wrapper.SerializeToString()


def _deadline_s(context: Any) -> float | None:
    """The call's deadline as time.monotonic() seconds, or None when it has none."""
    remaining_s = context.time_remaining()
    return None if remaining_s is None else time.monotonic() + remaining_s


def _timeout_s(context: Any) -> float | None:
    """The call's remaining time; None lets the plane apply its repository timeout."""
    remaining_s: float | None = context.time_remaining()
    return remaining_s


_UNARY: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    "ModelStatistics": (pb.ModelStatisticsRequest, pb.ModelStatisticsResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse),
    "SystemSharedMemoryStatus": (
        pb.SystemSharedMemoryStatusRequest,
        pb.SystemSharedMemoryStatusResponse,
    ),
    "SystemSharedMemoryRegister": (
        pb.SystemSharedMemoryRegisterRequest,
        pb.SystemSharedMemoryRegisterResponse,
    ),
    "SystemSharedMemoryUnregister": (
        pb.SystemSharedMemoryUnregisterRequest,
        pb.SystemSharedMemoryUnregisterResponse,
    ),
    "CudaSharedMemoryStatus": (pb.CudaSharedMemoryStatusRequest, pb.CudaSharedMemoryStatusResponse),
    "CudaSharedMemoryRegister": (
        pb.CudaSharedMemoryRegisterRequest,
        pb.CudaSharedMemoryRegisterResponse,
    ),
    "CudaSharedMemoryUnregister": (
        pb.CudaSharedMemoryUnregisterRequest,
        pb.CudaSharedMemoryUnregisterResponse,
    ),
    "TraceSetting": (pb.TraceSettingRequest, pb.TraceSettingResponse),
    "LogSettings": (pb.LogSettingsRequest, pb.LogSettingsResponse),
}


def generic_handler(servicer: GatewayServicer) -> grpc.GenericRpcHandler:
    """The service's method handlers; ModelInfer/ModelStreamInfer move bytes untouched, every
    other rpc parses its request inside the handler (``protos.parse_guard``)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
        for name, (request_type, response_type) in _UNARY.items()
    }
    handlers["ModelInfer"] = grpc.unary_unary_rpc_method_handler(servicer.ModelInfer)
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(servicer.ModelStreamInfer)
    # unparseable requests: INVALID_ARGUMENT and one rate-limited line, as at the worker
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME, guard_handlers(SERVICE_NAME, handlers)
    )
