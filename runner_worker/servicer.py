"""Thin gRPC servicer of Triton's GRPCInferenceService for the worker's models.

Each rpc converts protobuf in, calls the hosting/inference layer, converts out; errors become
status codes through ``protos.status.to_grpc_code`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from collections.abc import AsyncIterator
from typing import Any

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.errors import InvalidArgument, RunnerFleetError
from protos.status import to_grpc_code
from runner_worker import describe
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle, State
from runner_worker.settings import WorkerSettings

__all__ = ["InferenceServicer", "server_version", "deadline_s"]


def server_version() -> str:
    """The installed RunnerFleet version."""
    try:
        return importlib.metadata.version("runnerfleet")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def deadline_s(context: Any) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def _abort(context: Any, exc: BaseException) -> None:
    message = exc.message if isinstance(exc, RunnerFleetError) else f"{type(exc).__name__}: {exc}"
    await context.abort(to_grpc_code(exc), message)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The Open Inference Protocol as Triton serves it, for this worker's models."""

    def __init__(
        self, host: ModelHost, plane: InferencePlane, life: Lifecycle, settings: WorkerSettings
    ) -> None:
        self._host = host
        self._plane = plane
        self._life = life
        self._settings = settings

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
        extensions = ["model_configuration", "model_repository"]
        if describe.statistics_works(self._host):
            extensions.append("statistics")
        return pb.ServerMetadataResponse(
            name="runnerfleet", version=server_version(), extensions=extensions
        )

    # --------------------------------------------------------------------- metadata
    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        try:
            hosted = self._host.get(request.name, request.version)
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise
        versions = [request.version] if request.version else self._host.versions(hosted.name)
        return describe.model_metadata(hosted.runner, versions)

    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        try:
            hosted = self._host.get(request.name, request.version)
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise
        return pb.ModelConfigResponse(config=describe.config_of(hosted, self._settings))

    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        try:
            models = self._select(request.name, request.version)
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise
        return pb.ModelStatisticsResponse(model_stats=[describe.statistics_of(m) for m in models])

    def _select(self, name: str, version: str) -> list[HostedModel]:
        if not name:
            return self._host.hosted()
        if version:
            return [self._host.get(name, version)]
        self._host.get(name)  # NotFound naming it
        return [m for m in self._host.hosted() if m.name == name]

    # --------------------------------------------------------------------- inference
    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        try:
            return await self._plane.infer(request, deadline_s(context))
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise

    async def ModelStreamInfer(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        results: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(req: pb.ModelInferRequest) -> None:
            try:
                response = await self._plane.infer(req, deadline_s(context))
                await results.put(pb.ModelStreamInferResponse(infer_response=response))
            except RunnerFleetError as exc:
                await results.put(
                    pb.ModelStreamInferResponse(
                        error_message=exc.message,
                        infer_response=pb.ModelInferResponse(
                            model_name=req.model_name, model_version=req.model_version, id=req.id
                        ),
                    )
                )

        async def read() -> None:
            async for req in request_iterator:
                task = asyncio.create_task(answer(req), name="stream-infer")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
            await results.put(None)

        reader = asyncio.create_task(read(), name="stream-reader")
        try:
            while (item := await results.get()) is not None:
                yield item
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

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

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        try:
            version = _repository_param(request, "version")
            tag = request.model_name + (f":{version}" if version else "")
            if not request.model_name:
                raise InvalidArgument("model_name is required")
            await self._host.load(tag)
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        try:
            await self._host.unload(request.model_name, _repository_param(request, "version"))
        except RunnerFleetError as exc:
            await _abort(context, exc)
            raise
        return pb.RepositoryModelUnloadResponse()


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
