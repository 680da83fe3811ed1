"""The gateway's data plane: every request's policy, for any front door (gRPC now, HTTP next).

The twin of the worker's ``runner_worker/inference.py``: front doors convert their wire format
in, call one method here, and convert the result out; nothing here knows about a transport
(no grpc contexts, no status codes). Errors are raised as ``protos.errors.RunnerFleetError``
subclasses, which each front door maps to its own codes (gRPC: ``protos.status``).

What lives here, each in one place:

- admission: at most ``max_inflight`` model requests in flight (RESOURCE_EXHAUSTED beyond),
  and drain (after ``start_draining()`` new model requests get UNAVAILABLE while the ones in
  flight finish; ``wait_idle()`` waits for them, bounded);
- routing and forwarding: service APIs the gateway runs itself, else the forwarder (router +
  bounded retries), with every outcome counted by code;
- version choice: a request or description without a version means the served version,
  ``store.versions.served_version`` over what the SERVING workers host (the worker applies
  the same rule), so ModelInfer, ModelMetadata, ModelConfig and ModelReady agree;
- describe: server and model readiness, metadata, config, the repository index;
- statistics: fanned out to the workers and summed, and the perf_analyzer rule for when the
  "statistics" extension is advertised.

API (all deadlines are ``time.monotonic()`` seconds, None = no deadline):

- ``async infer(request_bytes, deadline_s, *, protocol="grpc") -> bytes``: a serialized
  ModelInferRequest in, the serialized ModelInferResponse out (tensors are never decoded
  here); ``protocol`` labels its request metrics (``grpc`` or ``http``);
- ``server_ready() -> bool``, ``server_metadata() -> pb.ServerMetadataResponse``;
- ``model_ready(name, version) -> bool``;
- ``model_metadata(name, version) -> pb.ModelMetadataResponse``;
- ``model_config(name, version) -> model_config_pb2.ModelConfig``;
- ``async statistics(name, version) -> pb.ModelStatisticsResponse`` (empty name = all);
- ``repository_index(ready_only) -> pb.RepositoryIndexResponse``;
- ``async load(name, parameters, timeout_s)``, ``async unload(name, parameters, timeout_s)``
  (``timeout_s`` None: the ``repository_timeout_s`` setting)
  (``parameters``: Triton's ModelRepositoryParameters by key, e.g. ``version``, ``worker``);
- ``start_draining()``, ``async wait_idle(timeout_s) -> bool``;
- ``shm_status(name)``, ``async shm_register(request)``, ``async shm_unregister(name)``:
  system shared memory, mirrored to every worker (``api_gateway/shm.py``).

``infer`` also takes the client's W3C ``traceparent`` (any front door hands it over): the
request span, its log scope (request id, trace id) and its exemplar are set up here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from api_gateway import statistics
from api_gateway.deadline_floor import LatencyFloor, ServiceRate, estimated_wait_s
from api_gateway.forwarder import Forwarder
from api_gateway.header import RequestHeader, parse_request_header
from api_gateway.metrics import GatewayMetrics
from api_gateway.pool import Worker, WorkerPool
from api_gateway.repository import Repository
from api_gateway.shm import SharedMemoryForwarder
from protos import grpc_service_pb2 as pb
from protos import internal_pb2, model_config_pb2
from protos.errors import (
    NotFound,
    ResourceExhausted,
    RunnerFleetError,
    Unavailable,
    Unimplemented,
    shown,
)
from protos.logformat import request_scope
from protos.server_info import SERVER_NAME, server_version
from protos.shm import RegionStatus, shm_available
from protos.tracing import Tracing
from store.versions import served_version

__all__ = ["GatewayPlane", "ServiceApis"]

# codes of requests a worker spent its time on (they count towards the answer rate)
_ANSWERED = frozenset({"OK", "INTERNAL"})
_SPAN_ATTRIBUTES = {"rpc.method": "ModelInfer"}
# an estimated wait must fit the remaining deadline (times this). Not more than 1: the rate dips
# for a moment while traffic moves off a draining or crashed worker, and a margin of 1.5
# refused 1-4 requests that would have finished in the SIGTERM chaos scenario.
_WAIT_MARGIN = 1.0


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

    def runner_models(self) -> list[tuple[str, str]]: ...


class _NoApis:
    def __contains__(self, name: str) -> bool:
        return False

    def names(self) -> list[str]:
        return []


class GatewayPlane:
    """Admission, routing, version choice, describe and statistics for the whole pool."""

    def __init__(
        self,
        pool: WorkerPool,
        forwarder: Forwarder,
        metrics: GatewayMetrics,
        *,
        max_inflight: int,
        apis: ServiceApis | None = None,
        statistics_timeout_s: float = 5.0,
        repository_timeout_s: float = 300.0,
        tracing: Tracing | None = None,
        shm: SharedMemoryForwarder | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        self._shm = shm
        self._pool = pool
        self._forwarder = forwarder
        self._metrics = metrics
        self._max_inflight = max_inflight
        self._floor = LatencyFloor()  # fastest recent answer per model (deadline refusals)
        self._rate = ServiceRate()  # answers per second per model (estimated waits)
        self._model_inflight: dict[str, int] = {}
        self._served_versions: dict[str, str] = {}  # name -> served version, per pool generation
        self._served_generation = -1
        self._statistics_timeout_s = statistics_timeout_s  # one worker's ModelStatistics answer
        self._repository_timeout_s = repository_timeout_s  # load/unload without a deadline
        self._apis: Any = apis if apis is not None else _NoApis()
        self._repository = Repository(pool, self._apis.names())
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()

    # -- admission and drain --------------------------------------------------------------

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

    async def infer(
        self,
        request: bytes,
        deadline_s: float | None,
        traceparent: str | None = None,
        *,
        protocol: str = "grpc",
    ) -> bytes:
        """Admit, route and answer one serialized ModelInferRequest; every outcome is counted.

        ``traceparent`` (W3C, from the client) parents the request's span; a malformed one is
        ignored. With tracing off, a valid one is still passed on to the worker as it came.
        ``protocol`` names the front door it came in by (the metrics' ``protocol`` label).
        """
        model_inflight = self._model_inflight
        started_s = time.perf_counter()
        header: RequestHeader | None = None
        code = "OK"
        message = ""
        admitted = False
        trace = self._tracing.start_request(
            "gateway ModelInfer", traceparent, attributes=_SPAN_ATTRIBUTES
        )
        span, trace_id = trace.span, trace.trace_id  # span: None unless sampled
        scope: request_scope | None = None  # the request's log ids, once its header is read
        try:
            header = parse_request_header(request)
            if deadline_s is not None:
                self._refuse_if_unmeetable(header.model_name, deadline_s)
            scope = request_scope(header.request_id, trace_id)  # id made only if logged
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
            model_inflight[header.model_name] = model_inflight.get(header.model_name, 0) + 1
            with scope:
                if header.model_name in self._apis:
                    return await self._apis.infer(header, request, deadline_s)
                return await self._forwarder.forward(
                    self._route(header),
                    request,
                    deadline_s,
                    span=span,
                    traceparent=trace.traceparent,
                )
        except RunnerFleetError as exc:
            code, message = exc.code.value, exc.message
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            if admitted:
                self.inflight -= 1
                assert header is not None
                model_inflight[header.model_name] -= 1
                if code in _ANSWERED:
                    self._rate.observe(header.model_name)
                if self.draining and self.inflight == 0:
                    self._idle.set()
            duration_s = time.perf_counter() - started_s
            if code == "OK" and header is not None:
                self._floor.observe(header.model_name, duration_s)
            self._metrics.observe_request(
                self._model_label(header, code),
                code,
                duration_s,
                None if span is None else trace_id,
                protocol,
            )
            if span is not None:
                self._tracing.end(
                    span,
                    status=code,
                    message=message,
                    attributes={
                        "runnerfleet.model": header.model_name if header else "",
                        "runnerfleet.model_version": header.model_version if header else "",
                    },
                )
            _log_request(header, code, message, duration_s, scope or request_scope("", trace_id))

    def _refuse_if_unmeetable(self, model: str, deadline_s: float) -> None:
        """RESOURCE_EXHAUSTED now for what cannot finish in time (api_gateway/deadline_floor.py):
        the deadline left is below the fastest recent answer, or below the estimated wait of
        the requests already in flight for the model at its recent answer rate."""
        now_s = time.monotonic()
        remaining_s = deadline_s - now_s
        floor_s = self._floor.floor_s(model)
        if floor_s is not None and remaining_s < floor_s:
            self._metrics.rejected.labels("deadline_unmeetable").inc()
            raise ResourceExhausted(
                f"remaining deadline {remaining_s * 1000:.1f} ms is shorter than the fastest "
                f"recent answer of model {shown(model)} ({floor_s * 1000:.1f} ms); send it "
                "with a longer deadline"
            )
        inflight = self._model_inflight.get(model, 0)
        wait_s = estimated_wait_s(inflight, self._rate.rate_per_s(model, now_s))
        if wait_s and floor_s is not None:
            # the estimate is a mean; one answer comes up to one service time later (a batch is
            # a quantum): the fastest recent answer stands for that service time
            wait_s += floor_s
        if wait_s * _WAIT_MARGIN > remaining_s:
            self._metrics.rejected.labels("deadline_unmeetable").inc()
            raise ResourceExhausted(
                f"estimated wait {wait_s * 1000:.1f} ms vs remaining deadline "
                f"{remaining_s * 1000:.1f} ms ({inflight} requests of model {shown(model)} in "
                "flight); retry later, elsewhere, or with a longer deadline"
            )

    def _route(self, header: RequestHeader) -> RequestHeader:
        """The header to route by: no version means the served one (the bytes stay as sent).

        A worker hosting the served version serves it for an empty version too (same rule,
        nothing newer there), so the answer comes from the version the gateway describes.
        """
        if header.model_version:
            return header
        version = self._served(header.model_name)
        if version is None:
            return header
        return RequestHeader(header.model_name, version, header.request_id)  # not _replace: 3x

    def _model_label(self, header: RequestHeader | None, code: str) -> str:
        if header is None:
            return "_invalid"
        name = header.model_name
        if code == "OK" or name in self._apis or self._pool.knows(name):
            return name
        return "_unknown"

    # -- version choice -------------------------------------------------------------------

    def _served(self, name: str) -> str | None:
        """The served version of ``name``: newest created among SERVING workers (else any).

        Kept until the pool announces a change (membership, health, hosted models), so the
        hot path does not walk every worker's models per request; unknown names are not kept.
        """
        if self._served_generation != self._pool.generation:
            self._served_versions.clear()
            self._served_generation = self._pool.generation
        version = self._served_versions.get(name)
        if version is None:
            version = self._served_now(name)
            if version is not None:
                self._served_versions[name] = version
        return version

    def _served_now(self, name: str) -> str | None:
        created: dict[str, float] = {}
        serving: dict[str, float] = {}
        for worker in self._pool.workers:
            for (model, version), hosted in worker.models.items():
                if model != name:
                    continue
                created[version] = max(created.get(version, 0.0), hosted.created_unix_s)
                if worker.serving:
                    serving[version] = created[version]
        return served_version(serving or created)

    def _find(self, name: str, version: str) -> internal_pb2.HostedModel:
        """The described model for name/version (empty = served), preferring SERVING workers."""
        chosen = version or self._served(name)
        if chosen is not None:
            for worker in sorted(self._pool.workers, key=lambda w: not w.serving):
                hosted = worker.models.get((name, chosen))
                if hosted is not None:
                    return hosted
        label = f"{name}:{version}" if version else name
        raise NotFound(f"model {label} is not hosted by any worker")

    # -- describe -------------------------------------------------------------------------

    def server_ready(self) -> bool:
        """Whether some worker is SERVING (the gateway can answer model requests)."""
        return any(w.serving for w in self._pool.workers)

    def server_metadata(self) -> pb.ServerMetadataResponse:
        """Name, installed version and the protocol extensions the gateway supports now."""
        extensions = ["model_configuration", "model_repository"]
        if self._statistics_readable():
            extensions.append("statistics")
        if self._shm is not None and shm_available():
            extensions.append("system_shared_memory")
        extensions += ["logging", "trace"]  # protos/runtime_settings.py
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=server_version(), extensions=extensions
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

    def model_ready(self, name: str, version: str) -> bool:
        """Whether a SERVING worker has ``name`` (empty version = served) loaded and ready.

        A Service API is ready only while every runner model of its service is routable, so
        a client that waits for ModelReady and then calls is not told "not known yet".
        """
        if name in self._apis:
            return all(self.model_ready(m, v) for m, v in self._apis.runner_models())
        chosen = version or self._served(name)
        if chosen is None:
            return False
        return any(_ready(w, name, chosen) for w in self._pool.workers)

    def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        """Metadata of the version named (empty = served), listing every hosted version."""
        if name in self._apis:
            return self._apis.metadata(name)  # type: ignore[no-any-return]
        hosted = self._find(name, version)
        response = pb.ModelMetadataResponse()
        response.CopyFrom(hosted.metadata)
        response.name = name
        versions = sorted({v for w in self._pool.workers for (n, v) in w.models if n == name})
        del response.versions[:]
        response.versions.extend([version] if version else versions)
        return response

    def model_config(self, name: str, version: str) -> model_config_pb2.ModelConfig:
        """Triton's ModelConfig of the version named (empty = served)."""
        if name in self._apis:
            return self._apis.config(name)  # type: ignore[no-any-return]
        return self._find(name, version).config

    # -- statistics and repository --------------------------------------------------------

    async def statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse:
        """Statistics summed over the SERVING workers (empty name = every model)."""
        if name and name in self._apis:
            return pb.ModelStatisticsResponse(model_stats=[self._apis.statistics(name)])
        targets = [
            w for w in self._pool.workers if w.serving and (not name or w.hosts(name, version))
        ]
        if name and not targets:
            raise NotFound(f"model {name} is not served by any worker")
        replies = await asyncio.gather(
            *(w.statistics(name, version, self._statistics_timeout_s) for w in targets),
            return_exceptions=True,
        )
        merged = statistics.merge([r for r in replies if isinstance(r, pb.ModelStatisticsResponse)])
        if not name:
            merged.model_stats.extend(self._apis.statistics(api) for api in self._apis.names())
        return merged

    def repository_index(self, ready_only: bool) -> pb.RepositoryIndexResponse:
        """Every model any worker hosts (and the service APIs), with where it runs."""
        return self._repository.index(ready_only)

    def _repository_budget_s(self, timeout_s: float | None) -> float:
        return self._repository_timeout_s if timeout_s is None else timeout_s

    async def load(
        self,
        name: str,
        parameters: Mapping[str, pb.ModelRepositoryParameter],
        timeout_s: float | None,
    ) -> None:
        """Load ``name`` on the worker named by parameter ``worker``, else on every SERVING one."""
        await self._repository.load(name, parameters, self._repository_budget_s(timeout_s))

    async def unload(
        self,
        name: str,
        parameters: Mapping[str, pb.ModelRepositoryParameter],
        timeout_s: float | None,
    ) -> None:
        """Unload ``name`` from the worker named by ``worker``, else from every SERVING host."""
        await self._repository.unload(name, parameters, self._repository_budget_s(timeout_s))

    # -- system shared memory (registered at every worker: same host) --------------------

    def _registry(self) -> SharedMemoryForwarder:
        if self._shm is None:
            raise Unimplemented("system shared memory is not enabled on this gateway")
        return self._shm

    def shm_status(self, name: str) -> list[RegionStatus]:
        """The registered regions (empty name = all; NotFound for an unknown one)."""
        return self._registry().status(name)

    async def shm_register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        """Register a region at every SERVING worker (all or none)."""
        await self._registry().register(request)

    async def shm_unregister(self, name: str) -> None:
        """Unregister one region (empty = all) everywhere."""
        await self._registry().unregister(name)


_request_log = logging.getLogger("api_gateway.requests")


def _log_request(
    header: RequestHeader | None,
    code: str,
    message: str,
    duration_s: float,
    scope: request_scope,
) -> None:
    """One line per request: DEBUG normally, WARNING for INTERNAL (with the request's ids)."""
    level = logging.WARNING if code == "INTERNAL" else logging.DEBUG
    if not _request_log.isEnabledFor(level):
        return
    with scope:
        _request_log.log(
            level,
            "ModelInfer model=%s version=%s code=%s duration_ms=%.2f%s",
            header.model_name if header else "-",
            (header.model_version if header else "") or "-",
            code,
            duration_s * 1000,
            f" error={message}" if message else "",
        )


def _ready(worker: Worker, name: str, version: str) -> bool:
    hosted = worker.models.get((name, version))
    return worker.serving and not worker.ejected and hosted is not None and hosted.ready
