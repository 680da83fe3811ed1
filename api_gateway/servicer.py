"""The gateway's inference.GRPCInferenceService: protobuf in and out, status codes, no policy.

ModelInfer and ModelStreamInfer take the raw request bytes (no deserializer) and return the
worker's response bytes as they came (no serializer): the gateway never decodes tensors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc

from api_gateway import statistics
from api_gateway.forwarder import Forwarder
from api_gateway.header import RequestHeader, parse_request_header, wrap_stream_response
from api_gateway.metrics import GatewayMetrics
from api_gateway.pool import Worker, WorkerPool
from api_gateway.repository import Repository
from protos import grpc_service_pb2 as pb
from protos import model_config_pb2
from protos.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    RunnerFleetError,
    Unavailable,
)
from protos.status import to_grpc_code

__all__ = ["GatewayServicer", "SERVICE_NAME", "ServiceApis", "generic_handler"]

SERVICE_NAME = "inference.GRPCInferenceService"
_VERSION = "0.1.0"


class ServiceApis(Protocol):
    """Service APIs the gateway runs itself (see api_gateway/service_api.py)."""

    def __contains__(self, name: str) -> bool: ...

    def names(self) -> list[str]: ...

    async def infer(
        self, header: RequestHeader, request: bytes, deadline: float | None
    ) -> bytes: ...

    def metadata(self, name: str) -> pb.ModelMetadataResponse: ...

    def config(self, name: str) -> model_config_pb2.ModelConfig: ...

    def statistics(self, name: str) -> pb.ModelStatistics: ...


class _NoApis:
    def __contains__(self, name: str) -> bool:
        return False

    def names(self) -> list[str]:
        return []


class GatewayServicer:
    """Every rpc of inference.GRPCInferenceService, backed by the pool and the forwarder."""

    def __init__(
        self,
        pool: WorkerPool,
        forwarder: Forwarder,
        metrics: GatewayMetrics,
        *,
        max_inflight: int,
        apis: ServiceApis | None = None,
    ) -> None:
        self._pool = pool
        self._forwarder = forwarder
        self._metrics = metrics
        self._max_inflight = max_inflight
        self._apis: Any = apis if apis is not None else _NoApis()
        self._repository = Repository(pool, self._apis.names())
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()

    def start_draining(self) -> None:
        """Refuse new model requests with UNAVAILABLE (clients go elsewhere or retry)."""
        self.draining = True
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """After start_draining: wait (bounded) until no request is in flight; True if none is."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- inference (hot path) -------------------------------------------------------------

    async def _infer(self, request: bytes, deadline: float | None) -> bytes:
        """Admit, route and answer one model request; every outcome is counted by code."""
        started_s = time.perf_counter()
        header: RequestHeader | None = None
        code = "OK"
        admitted = False
        try:
            header = parse_request_header(request)
            if self.draining:
                raise Unavailable(
                    "the gateway is shutting down: retry (it restarts, or another serves)"
                )
            if self.inflight >= self._max_inflight:
                self._metrics.rejected.labels("overload").inc()
                raise ResourceExhausted(
                    f"gateway overloaded: {self._max_inflight} requests in flight"
                )
            admitted = True
            self.inflight += 1
            if header.model_name in self._apis:
                return await self._apis.infer(header, request, deadline)
            return await self._forwarder.forward(header, request, deadline)
        except RunnerFleetError as exc:
            code = exc.code.value
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            if admitted:
                self.inflight -= 1
                if self.draining and self.inflight == 0:
                    self._idle.set()
            self._metrics.observe_request(
                self._model_label(header, code), code, time.perf_counter() - started_s
            )

    def _model_label(self, header: RequestHeader | None, code: str) -> str:
        if header is None:
            return "_invalid"
        name = header.model_name
        if code == "OK" or name in self._apis or self._pool.knows(name):
            return name
        return "_unknown"

    async def ModelInfer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        remaining_s = context.time_remaining()
        deadline = None if remaining_s is None else time.monotonic() + remaining_s
        try:
            return await self._infer(request, deadline)
        except RunnerFleetError as exc:
            await context.abort(to_grpc_code(exc), exc.message)
            raise  # unreachable: abort raises

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        remaining_s = context.time_remaining()
        deadline = None if remaining_s is None else time.monotonic() + remaining_s
        answers: asyncio.Queue[bytes | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(raw: bytes) -> None:
            try:
                answers.put_nowait(wrap_stream_response(await self._infer(raw, deadline)))
            except RunnerFleetError as exc:
                answers.put_nowait(_stream_error(raw, exc))

        async def read() -> None:
            try:
                async for raw in request_iterator:
                    task = asyncio.create_task(answer(raw), name="stream-infer-item")
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.gather(*list(tasks))
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read(), name="stream-infer-reader")
        try:
            while (item := await answers.get()) is not None:
                yield item
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    # -- server and model state ---------------------------------------------------------------

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=any(w.serving for w in self._pool.workers))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        extensions = ["model_configuration", "model_repository"]
        if self._statistics_readable():
            extensions.append("statistics")
        return pb.ServerMetadataResponse(
            name="runnerfleet", version=_VERSION, extensions=extensions
        )

    def _statistics_readable(self) -> bool:
        """Whether perf_analyzer can read our statistics (the worker's rule).

        perf_analyzer parses model versions with std::stoll and aborts on any other text, so
        "statistics" is advertised only while every hosted version is a plain integer.
        """
        versions = [v for w in self._pool.workers for (_, v) in w.models]
        if self._apis.names() or not versions:
            return False
        return all(v.isdigit() and str(int(v)) == v for v in versions)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        if request.name in self._apis:
            return pb.ModelReadyResponse(ready=True)
        ready = any(
            w.serving
            and w.hosts(request.name, request.version)
            and _hosted(w, request.name, request.version).ready
            for w in self._pool.workers
        )
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        return self._metadata(request.name, request.version)

    def _metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        if name in self._apis:
            return self._apis.metadata(name)
        hosted = self._find(name, version)
        response = pb.ModelMetadataResponse()
        response.CopyFrom(hosted.metadata)
        response.name = name
        versions = sorted({v for w in self._pool.workers for (n, v) in w.models if n == name})
        del response.versions[:]
        response.versions.extend([version] if version else versions)
        return response

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Any
    ) -> pb.ModelConfigResponse:
        if request.name in self._apis:
            return pb.ModelConfigResponse(config=self._apis.config(request.name))
        return pb.ModelConfigResponse(config=self._find(request.name, request.version).config)

    def _find(self, name: str, version: str) -> Any:
        """A HostedModel for name/version, preferring SERVING workers; NotFound otherwise."""
        workers = sorted(self._pool.workers, key=lambda w: not w.serving)
        for worker in workers:
            if worker.hosts(name, version):
                return _hosted(worker, name, version)
        label = f"{name}:{version}" if version else name
        raise NotFound(f"model {label} is not hosted by any worker")

    # -- statistics and repository ------------------------------------------------------------

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        name, version = request.name, request.version
        if name and name in self._apis:
            return pb.ModelStatisticsResponse(model_stats=[self._apis.statistics(name)])
        targets = [
            w for w in self._pool.workers if w.serving and (not name or w.hosts(name, version))
        ]
        if name and not targets:
            raise NotFound(f"model {name} is not served by any worker")
        replies = await asyncio.gather(
            *(w.inference.ModelStatistics(request, timeout=5.0) for w in targets),
            return_exceptions=True,
        )
        merged = statistics.merge([r for r in replies if isinstance(r, pb.ModelStatisticsResponse)])
        if not name:
            merged.model_stats.extend(self._apis.statistics(api) for api in self._apis.names())
        return merged

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        return self._repository.index(request.ready)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        await self._repository.load(request, _remaining(context, 300.0))
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self._repository.unload(request, _remaining(context, 300.0))
        return pb.RepositoryModelUnloadResponse()


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


def _hosted(worker: Worker, name: str, version: str) -> Any:
    if version:
        return worker.models[(name, version)]
    return next(m for (n, _), m in sorted(worker.models.items(), reverse=True) if n == name)


def _remaining(context: Any, default_s: float) -> float:
    remaining_s = context.time_remaining()
    return default_s if remaining_s is None else remaining_s


def _guarded(method: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    """Turn a RunnerFleetError raised by an rpc into its status code and message."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request, context)
        except RunnerFleetError as exc:
            await context.abort(to_grpc_code(exc), exc.message)

    return call


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
}


def generic_handler(servicer: GatewayServicer) -> grpc.GenericRpcHandler:
    """The service's method handlers; ModelInfer/ModelStreamInfer move bytes untouched."""
    handlers: dict[str, grpc.RpcMethodHandler] = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(servicer, name)),
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
        for name, (request_type, response_type) in _UNARY.items()
    }
    handlers["ModelInfer"] = grpc.unary_unary_rpc_method_handler(servicer.ModelInfer)
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(servicer.ModelStreamInfer)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
