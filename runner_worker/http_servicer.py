"""The worker's HTTP/REST v2 backend: the same host, describe functions, InferencePlane and
shared-memory registry as its gRPC servicer, answered in protobuf messages (and region
statuses) that ``protos.http_server`` turns into JSON.
"""

from __future__ import annotations

from typing import Any

from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, RunnerFleetError
from protos.http_server import PROTOCOL
from protos.shm import RegionStatus, SharedMemoryRegistry, enabled_registry
from runner_worker import describe
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle, State
from runner_worker.settings import WorkerSettings

__all__ = ["WorkerHttpBackend"]


class WorkerHttpBackend:
    """A ``protos.http_server.V2Backend`` over this worker's models."""

    def __init__(
        self,
        host: ModelHost,
        plane: InferencePlane,
        life: Lifecycle,
        settings: WorkerSettings,
        shm: SharedMemoryRegistry | None = None,
    ) -> None:
        self._host = host
        self._plane = plane
        self._life = life
        self._settings = settings
        self._shm = shm  # the registry the plane reads and writes regions through

    async def server_ready(self) -> bool:
        return self._life.serving

    async def server_metadata(self) -> pb.ServerMetadataResponse:
        return describe.server_metadata(self._host, self._shm)

    async def model_ready(self, name: str, version: str) -> bool:
        try:
            self._host.get(name, version)
        except RunnerFleetError:
            return False
        return self._life.state is not State.STOPPED

    async def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        hosted = self._host.get(name, version)
        versions = [version] if version else self._host.versions(hosted.name)
        return describe.model_metadata(hosted.runner, versions)

    async def model_config(self, name: str, version: str) -> Any:
        return describe.config_of(self._host.get(name, version), self._settings)

    async def model_statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse:
        models = self._select(name, version)
        return pb.ModelStatisticsResponse(model_stats=[describe.statistics_of(m) for m in models])

    def _select(self, name: str, version: str) -> list[HostedModel]:
        if not name:
            return self._host.hosted()
        if version:
            return [self._host.get(name, version)]
        self._host.get(name)  # NotFound naming it
        return [m for m in self._host.hosted() if m.name == name]

    async def infer(
        self, request: pb.ModelInferRequest, deadline_s: float | None, traceparent: str | None
    ) -> pb.ModelInferResponse:
        return await self._plane.infer(request, deadline_s, traceparent, protocol=PROTOCOL)

    async def repository_index(self, ready: bool) -> pb.RepositoryIndexResponse:
        index = pb.RepositoryIndexResponse.ModelIndex
        entries = [
            index(name=m.name, version=m.version, state="READY", reason=self._life.device)
            for m in self._host.hosted()
        ]
        if not ready:
            entries += [index(name=n, state="LOADING") for n in sorted(self._host.loading)]
        return pb.RepositoryIndexResponse(models=entries)

    async def load(self, request: pb.RepositoryModelLoadRequest) -> None:
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        version = _string_param(request, "version")
        await self._host.load(request.model_name + (f":{version}" if version else ""))

    async def unload(self, request: pb.RepositoryModelUnloadRequest) -> None:
        await self._host.unload(request.model_name, _string_param(request, "version"))

    async def shm_status(self, name: str) -> list[RegionStatus]:
        return enabled_registry(self._shm, "worker").status(name)

    async def shm_register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        registry = enabled_registry(self._shm, "worker")
        registry.register(request.name, request.key, request.offset, request.byte_size)

    async def shm_unregister(self, name: str) -> None:
        enabled_registry(self._shm, "worker").unregister(name)


def _string_param(request: Any, key: str) -> str:
    if key not in request.parameters:
        return ""
    param = request.parameters[key]
    choice = param.WhichOneof("parameter_choice")
    if choice == "string_param":
        return str(param.string_param)
    if choice == "int64_param":
        return str(param.int64_param)
    raise InvalidArgument(f"parameter {key!r} must be a string")
