"""Thin gRPC servicer of Triton's GRPCInferenceService for the worker's models.

Each rpc converts protobuf in, calls the hosting/inference layer, converts out; errors become
status codes through ``protos.status.aborts_on_error`` only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.cuda_shm import CudaSharedMemoryRefusal
from protos.errors import InvalidArgument, RunnerFleetError
from protos.parse_guard import wire_handler
from protos.runtime_settings import RuntimeSettings, RuntimeSettingsRpcs
from protos.server_info import server_version
from protos.shm import SharedMemoryRegistry, enabled_registry
from protos.status import aborts_on_error
from protos.stream import answer_stream
from protos.tracing import Tracing, traceparent_from_metadata
from runner_worker import describe
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle, State
from runner_worker.settings import WorkerSettings

__all__ = [
    "InferenceServicer",
    "server_version",
    "deadline_s",
    "shm_status_response",
    "traceparent_of",
]


def deadline_s(context: Any) -> float | None:
    """The call's deadline as time.monotonic() seconds, or None when it has none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def traceparent_of(context: Any) -> str | None:
    """The caller's W3C ``traceparent`` from the call's metadata, if it sent one."""
    return traceparent_from_metadata(context.invocation_metadata())


class InferenceServicer(
    CudaSharedMemoryRefusal, RuntimeSettingsRpcs, pb_grpc.GRPCInferenceServiceServicer
):
    """The Open Inference Protocol as Triton serves it, for this worker's models (trace and
    log settings: the worker process's own, ``protos.runtime_settings``)."""

    def __init__(
        self,
        host: ModelHost,
        plane: InferencePlane,
        life: Lifecycle,
        settings: WorkerSettings,
        shm: SharedMemoryRegistry | None = None,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        self._host = host
        self._plane = plane
        self._life = life
        self._settings = settings
        self._shm = shm
        self._runtime = runtime if runtime is not None else RuntimeSettings(Tracing())

    # --------------------------------------------------------------------- health-ish
    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._life.serving)

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        try:
            self._host.get(request.name, request.version)
        except RunnerFleetError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self._life.state is not State.STOPPED)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return describe.server_metadata(self._host, self._shm)

    # --------------------------------------------------------------------- metadata
    @aborts_on_error
    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        hosted = self._host.get(request.name, request.version)
        versions = [request.version] if request.version else self._host.versions(hosted.name)
        return describe.model_metadata(hosted.runner, versions)

    @aborts_on_error
    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        hosted = self._host.get(request.name, request.version)
        return pb.ModelConfigResponse(config=describe.config_of(hosted, self._settings))

    @aborts_on_error
    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        models = self._select(request.name, request.version)
        return pb.ModelStatisticsResponse(model_stats=[describe.statistics_of(m) for m in models])

    def _select(self, name: str, version: str) -> list[HostedModel]:
        if not name:
            return self._host.hosted()
        if version:
            return [self._host.get(name, version)]
        self._host.get(name)  # NotFound naming it
        return [m for m in self._host.hosted() if m.name == name]

    # --------------------------------------------------------------------- inference
    @wire_handler
    @aborts_on_error
    async def ModelInfer(self, request: bytes, context: Any) -> bytes:
        # bytes in and out (protos.parse_guard.wire_handler): big tensors are not copied by
        # protobuf's parser and serializer (InferencePlane.infer_wire)
        return await self._plane.infer_wire(request, deadline_s(context), traceparent_of(context))

    async def ModelStreamInfer(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        deadline = deadline_s(context)
        traceparent = traceparent_of(context)

        async def answer(req: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
            try:
                response = await self._plane.infer(req, deadline, traceparent)
            except RunnerFleetError as exc:
                return pb.ModelStreamInferResponse(
                    error_message=exc.message,
                    infer_response=pb.ModelInferResponse(
                        model_name=req.model_name, model_version=req.model_version, id=req.id
                    ),
                )
            return pb.ModelStreamInferResponse(infer_response=response)

        async for item in answer_stream(request_iterator, answer):
            yield item

    # --------------------------------------------------------------------- repository
    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        index = pb.RepositoryIndexResponse.ModelIndex
        entries = [
            index(name=m.name, version=m.version, state="READY", reason=self._life.device)
            for m in self._host.hosted()
        ]
        entries += [index(name=n, state="LOADING") for n in sorted(self._host.loading)]
        if request.ready:
            entries = [e for e in entries if e.state == "READY"]
        return pb.RepositoryIndexResponse(models=entries)

    @aborts_on_error
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        version = _repository_param(request, "version")
        tag = request.model_name + (f":{version}" if version else "")
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        await self._host.load(tag)
        return pb.RepositoryModelLoadResponse()

    @aborts_on_error
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        await self._host.unload(request.model_name, _repository_param(request, "version"))
        return pb.RepositoryModelUnloadResponse()

    # --------------------------------------------------------------------- shared memory
    def _registry(self) -> SharedMemoryRegistry:
        return enabled_registry(self._shm, "worker")

    @aborts_on_error
    async def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        return shm_status_response(self._registry().status(request.name))

    @aborts_on_error
    async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        self._registry().register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    @aborts_on_error
    async def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        self._registry().unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()


def shm_status_response(regions: list[Any]) -> pb.SystemSharedMemoryStatusResponse:
    """SystemSharedMemoryStatusResponse for a list of ``protos.shm.RegionStatus``."""
    response = pb.SystemSharedMemoryStatusResponse()
    for r in regions:
        entry = response.regions[r.name]
        entry.name, entry.key, entry.offset, entry.byte_size = r
    return response


def _repository_param(request: Any, key: str) -> str:
    if key not in request.parameters:
        return ""
    param = request.parameters[key]
    choice = param.WhichOneof("parameter_choice")
    if choice == "string_param":
        return str(param.string_param)
    if choice == "int64_param":
        return str(param.int64_param)
    if choice == "bytes_param":
        return bytes(param.bytes_param).decode("utf-8", "replace")
    raise InvalidArgument(f"parameter {key!r} must be a string")
