"""Worker pool: one channel per worker, health watched by stream, hosted models by DescribeModels.

Membership comes from a static `--workers` list or from `--workers-dns NAME:PORT`, re-resolved
every `dns_refresh_s` (new addresses join, vanished ones leave). Each worker has a named task
that holds a `grpc.health.v1.Health/Watch` stream open: SERVING (after a DescribeModels) lets
the router pick it, anything else (NOT_SERVING while loading or draining, a broken stream when
the process dies) takes it out at once, with no polling. A dead worker's stream fails as soon
as its connection resets; the task then reconnects with a short backoff, so a restarted
worker on the same address rejoins by itself. Hosted models are refreshed after every
transition to SERVING, after a load/unload sent through the gateway, and every
`describe_refresh_s` (loads done directly on a worker).

A stopped or partitioned worker keeps its stream open and silent, so a second named task per
worker sends a health Check with a deadline every `health_check_interval_s` (without waiting
for the previous one); `health_check_unhealthy_threshold` late answers in a row take it out of
rotation, `health_check_healthy_threshold` answers in time in a row bring it back (Envoy's
thresholds; `HealthCheckStreak`, docs/ROBUSTNESS.md), and HTTP/2 keepalive breaks its
connection within about two seconds. `Worker.serving` is both: stream SERVING and answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api_gateway.auth import WorkerCredentials
from api_gateway.coalescer import Coalescer, ForwardOutcome
from api_gateway.local_link import LocalLink
from api_gateway.outlier import OutlierDetector
from api_gateway.settings import GatewaySettings, parse_address
from api_gateway.shm_hop import ShmHop
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc, internal_pb2, internal_pb2_grpc
from protos.channel_options import FAST_RECONNECT
from protos.shm import shm_available
from protos.status import code_from_status_number, error_from_rpc_error, from_grpc_code

__all__ = ["HealthCheckStreak", "Worker", "WorkerPool", "channel_options"]

log = logging.getLogger(__name__)

# statuses of a failed call that mean "the call as a whole broke", not "the worker said no"
_TRANSPORT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}
)
_RECONNECT_BACKOFF_S = (0.1, 0.2, 0.5, 1.0)
_MODEL_INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
_SHM_TIMEOUT_S = 10.0  # one worker's shared-memory (un)registration


def channel_options(
    max_message_bytes: int,
    tls_server_name: str | None = None,
    *,
    keepalive_time_s: float = 1.0,
    keepalive_timeout_s: float = 1.0,
) -> list[tuple[str, int | str]]:
    """Channel options for gateway -> worker: big messages, fast reconnects, keepalive.

    Keepalive pings every ``keepalive_time_s`` (also without calls) and gives up after
    ``keepalive_timeout_s``, so a worker that stops answering (SIGSTOP, a partition) breaks
    its connection, and every call on it, within about two seconds even without the health
    check; workers accept pings that often (runner_worker/app.py).
    """
    name: list[tuple[str, int | str]] = (
        [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
    )
    return name + [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        *FAST_RECONNECT,
        ("grpc.keepalive_time_ms", max(int(keepalive_time_s * 1000), 1)),
        ("grpc.keepalive_timeout_ms", max(int(keepalive_timeout_s * 1000), 1)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 0),
    ]


class HealthCheckStreak:
    """Envoy's `unhealthy_threshold` / `healthy_threshold` over a worker's health checks.

    `unhealthy_threshold` failed checks in a row (no answer within the deadline) make it
    unresponsive; `healthy_threshold` answered checks in a row make it responsive again. Any
    result of the other kind resets the streak. Pure: no grpc, no clock.
    """

    def __init__(self, unhealthy_threshold: int, healthy_threshold: int) -> None:
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy_threshold = healthy_threshold
        self.responsive = True  # a new worker is given the benefit of the doubt
        self.failures = 0  # failed checks in a row
        self.successes = 0  # answered checks in a row

    def record(self, answered: bool) -> bool:
        """Count one check's result; return whether the worker is responsive now."""
        if answered:
            self.failures = 0
            self.successes += 1
            if self.successes >= self.healthy_threshold:
                self.responsive = True
        else:
            self.successes = 0
            self.failures += 1
            if self.failures >= self.unhealthy_threshold:
                self.responsive = False
        return self.responsive


class Worker:
    """One worker: its channel and stubs, health, hosted models and forward queue."""

    def __init__(
        self,
        address: str,
        settings: GatewaySettings,
        on_batch: Callable[[str, int, float], None],
        credentials: WorkerCredentials | None = None,
        is_ejected: Callable[[str], bool] = lambda address: False,
        on_call: Callable[[str, str], None] = lambda address, transport: None,
    ) -> None:
        self.address = address
        self._on_call = on_call  # (address, "local_link" | "grpc" | "shm_hop"): the metrics
        self._is_ejected = is_ejected
        creds = credentials or WorkerCredentials()
        options = channel_options(
            settings.max_message_bytes,
            creds.server_name,
            keepalive_time_s=settings.keepalive_time_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
        )
        if creds.channel is not None:  # TLS: a plaintext worker fails the handshake, never joins
            self.channel = grpc.aio.secure_channel(address, creds.channel, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(address, options=options)
        self.inference_metadata = creds.inference  # bearer token per scope (None: no token)
        self.control_metadata = creds.control
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.internal = internal_pb2_grpc.WorkerInternalStub(self.channel)
        self.inference = grpc_service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        # ModelInfer with bytes in and out (no serializers): a lone item skips the batch wrapper
        self._infer_bytes = self.channel.unary_unary(_MODEL_INFER_PATH)
        self.health_serving = False  # its health stream says SERVING (and it was described)
        # its health checks answered within their deadline (by the thresholds' streaks)
        self.checks = HealthCheckStreak(
            settings.health_check_unhealthy_threshold, settings.health_check_healthy_threshold
        )
        self.responsive = True
        self.described = False
        self.device = ""
        self.models: dict[tuple[str, str], internal_pb2.HostedModel] = {}
        self._names: frozenset[str] = frozenset()
        self.coalescer = Coalescer(
            self._forward_batch,
            max_items=settings.max_forward_batch_items,
            max_calls=settings.max_forward_calls_per_worker,
            max_batch_bytes=max(settings.max_message_bytes // 4, 1),
            on_batch=lambda n, s: on_batch(address, n, s),
            solo_call=self._forward_one,
        )
        self.watch_task: asyncio.Task[None] | None = None
        self.probe_task: asyncio.Task[None] | None = None
        # forwards to a worker on this host: frames on its Unix socket (api_gateway/local_link.py)
        self.link: LocalLink | None = None
        if settings.forward_local_link:
            self.link = LocalLink(address, settings.max_message_bytes)
        # big tensors to a worker on this host: through shared memory (api_gateway/shm_hop.py)
        self.hop: ShmHop | None = None
        if settings.forward_shm_min_bytes > 0 and shm_available():
            self.hop = ShmHop(
                self.register_shm,
                self.unregister_shm,
                address=address,
                min_bytes=settings.forward_shm_min_bytes,
                max_bytes=settings.forward_shm_max_bytes,
                on_hop=lambda: on_call(address, "shm_hop"),
            )

    @property
    def serving(self) -> bool:
        """SERVING by its health stream and answering health checks in time."""
        return self.health_serving and self.responsive

    @property
    def ejected(self) -> bool:
        """Sitting out after outlier ejection (api_gateway/outlier.py)."""
        return self._is_ejected(self.address)

    @property
    def inflight(self) -> int:
        """Requests queued for or running on this worker."""
        return self.coalescer.inflight

    def forward(
        self, request: bytes, deadline: float | None, traceparent: str = ""
    ) -> Awaitable[ForwardOutcome]:
        """Send one serialized ModelInferRequest (coalesced with others); never raises.

        ``deadline`` is time.monotonic() seconds or None; ``traceparent`` (W3C) goes with the
        request, in the call's metadata or its ForwardItem. The outcome carries an ErrorCode:
        this class is the transport edge, the only place that sees the worker's gRPC codes.
        """
        if self.hop is not None and self.hop.wants(len(request)):
            return self.hop.forward(request, deadline, traceparent, self.coalescer.submit)
        return self.coalescer.submit(request, deadline, traceparent)

    def lost(self) -> None:
        """Its process may have gone: what it held for this gateway is gone with it."""
        if self.hop is not None:
            self.hop.reset()
        if self.link is not None:
            self.link.close("its health stream broke")

    async def register_shm(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        """SystemSharedMemoryRegister on this worker; a failure raises its RunnerFleetError."""
        try:
            await self.inference.SystemSharedMemoryRegister(
                request, timeout=_SHM_TIMEOUT_S, metadata=self.inference_metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc_error(exc) from None

    async def unregister_shm(self, name: str) -> None:
        """SystemSharedMemoryUnregister (empty = all); an unknown region counts as done."""
        request = pb.SystemSharedMemoryUnregisterRequest(name=name)
        try:
            await self.inference.SystemSharedMemoryUnregister(
                request, timeout=_SHM_TIMEOUT_S, metadata=self.inference_metadata
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise error_from_rpc_error(exc) from None

    async def statistics(
        self, name: str, version: str, timeout_s: float
    ) -> pb.ModelStatisticsResponse:
        """This worker's ModelStatistics for name/version (empty name = all); raises on failure."""
        request = pb.ModelStatisticsRequest(name=name, version=version)
        answer: pb.ModelStatisticsResponse = await self._control(
            self.inference.ModelStatistics, request, timeout_s
        )
        return answer

    async def load_model(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None:
        """RepositoryModelLoad on this worker; a failure raises its RunnerFleetError."""
        request = pb.RepositoryModelLoadRequest(model_name=name)
        for key, value in parameters.items():
            request.parameters[key].CopyFrom(value)
        await self._control(self.inference.RepositoryModelLoad, request, timeout_s)

    async def unload_model(
        self, name: str, parameters: Mapping[str, pb.ModelRepositoryParameter], timeout_s: float
    ) -> None:
        """RepositoryModelUnload on this worker; a failure raises its RunnerFleetError."""
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        for key, value in parameters.items():
            request.parameters[key].CopyFrom(value)
        await self._control(self.inference.RepositoryModelUnload, request, timeout_s)

    async def _control(self, rpc: Any, request: Any, timeout_s: float) -> Any:
        """One control-scope call to this worker; a failure raises its RunnerFleetError."""
        try:
            return await rpc(request, timeout=timeout_s, metadata=self.control_metadata)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc_error(exc) from None

    def hosts(self, name: str, version: str) -> bool:
        """Whether this worker hosts `name` (any version when `version` is empty)."""
        if not version:
            return name in self._names
        return (name, version) in self.models

    def set_models(self, response: internal_pb2.DescribeModelsResponse) -> None:
        """Replace the hosted models with a DescribeModels answer."""
        self.models = {(m.name, m.version): m for m in response.models}
        self._names = frozenset(name for name, _ in self.models)
        # one full worker batch: the smallest batch any hosted batching model runs
        sizes = [m.config.max_batch_size for m in response.models if m.config.max_batch_size > 0]
        self.coalescer.full_call_items = min(sizes, default=0)
        self.device = response.device
        self.described = True
        if self.link is not None:
            self.link.offer(response.local_socket)

    async def _forward_batch(
        self, items: list[tuple[bytes, float, str]], timeout_s: float | None
    ) -> list[ForwardOutcome]:
        if len(items) == 1:
            return [await self._forward_one(*items[0])]
        # a coalesced call stays one ForwardBatch: sent over the local link as frames, such
        # calls came back sooner, the regroup held less and the worker ran smaller batches (iris
        # c=64: mean batch 20 vs 27, 3-9% fewer req/s in two races); lone requests gain
        self._on_call(self.address, "grpc")
        request = internal_pb2.ForwardBatchRequest()
        add = request.items.add
        for r, t, tp in items:  # in place: a message per item and its copy cost twice as much
            add(request=r, timeout_s=t, traceparent=tp)
        try:
            response = await self.internal.ForwardBatch(
                request, timeout=timeout_s, metadata=self.inference_metadata
            )
        except grpc.aio.AioRpcError as exc:
            return [_failed_call(self.address, exc)] * len(items)
        return [
            ForwardOutcome(code_from_status_number(r.code), r.response, r.message)
            for r in response.results
        ]

    async def _forward_one(
        self, request: bytes, timeout_s: float, traceparent: str = ""
    ) -> ForwardOutcome:
        """One request as a plain ModelInfer call: no wrapping, so no copies of big tensors."""
        if self.link is not None and self.link.usable:
            outcome = await self.link.call(request, timeout_s or None, traceparent)
            if outcome is not None:
                self._on_call(self.address, "local_link")
                return outcome
        self._on_call(self.address, "grpc")
        metadata = self.inference_metadata
        if traceparent:
            metadata = (*(metadata or ()), ("traceparent", traceparent))
        try:
            response = await self._infer_bytes(
                request, timeout=timeout_s or None, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            return _failed_call(self.address, exc)
        return ForwardOutcome(None, response)


def _failed_call(address: str, exc: grpc.aio.AioRpcError) -> ForwardOutcome:
    """The outcome of a call to `address` that failed as a whole."""
    code = exc.code()
    return ForwardOutcome(
        from_grpc_code(code),
        message=f"worker {address}: {exc.details()}",
        transport=code in _TRANSPORT_CODES,
    )


class WorkerPool:
    """The set of workers the gateway routes to, kept current by health streams and DNS."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        on_change: Callable[[WorkerPool], None] = lambda pool: None,
        on_batch: Callable[[str, int, float], None] = lambda worker, n, s: None,
        credentials: WorkerCredentials | None = None,
        outliers: OutlierDetector | None = None,
        on_ready: Callable[[Worker], Awaitable[None]] | None = None,
        on_call: Callable[[str, str], None] = lambda address, transport: None,
    ) -> None:
        self._settings = settings
        self._on_call = on_call
        self._credentials = credentials
        self.outliers = outliers
        self._on_change = on_change
        self._on_batch = on_batch
        self._on_ready = on_ready  # runs before a worker turns SERVING (shm replay)
        self.workers: list[Worker] = []
        self._by_address: dict[str, Worker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._first_seen: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self.generation = 0  # bumped by every change announced (caches of pool state key on it)
        self.on_unresponsive: Callable[[Worker], None] = lambda worker: None

    async def wait_change(self, timeout_s: float) -> bool:
        """Wait (bounded) until membership, health or hosted models change; True if they did."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True

    def notify(self) -> None:
        """A worker's routability changed outside the pool (an ejection began or ended)."""
        self._notify()

    def _notify(self) -> None:
        """Tell waiters and the owner that the pool changed."""
        self.generation += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        if self.outliers is not None:
            self.outliers.set_healthy(w.address for w in self.workers if w.serving)
        self._on_change(self)

    async def start(self) -> None:
        """Add the configured workers and start watching them; wait (bounded) for a first answer."""
        if self._settings.workers_dns:
            await self._resolve_once()
            self._tasks.append(asyncio.create_task(self._dns_loop(), name="pool-dns"))
        else:
            for address in self._settings.workers:
                self._add(address)
        self._tasks.append(asyncio.create_task(self._refresh_loop(), name="pool-describe"))
        waits = [event.wait() for event in self._first_seen.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*waits), self._settings.startup_discovery_timeout_s
                )

    async def close(self) -> None:
        """Stop watching, fail queued forwards, close channels."""
        for task in self._tasks:
            task.cancel()
        for worker in list(self.workers):
            await self._remove(worker.address)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close_hops(self) -> None:
        """Unlink every worker's shared-memory hop slots (process exit without ``close``)."""
        for worker in self.workers:
            if worker.hop is not None:
                worker.hop.close()

    def get(self, address: str) -> Worker | None:
        """The worker at `address`, if in the pool."""
        return self._by_address.get(address)

    def knows(self, name: str) -> bool:
        """Whether any worker (in any state) has described model `name`."""
        return any(worker.hosts(name, "") for worker in self.workers)

    async def describe(self, worker: Worker) -> None:
        """Refresh one worker's hosted models (errors leave the previous answer in place)."""
        try:
            response = await worker.internal.DescribeModels(
                internal_pb2.DescribeModelsRequest(),
                timeout=self._settings.describe_timeout_s,
                metadata=worker.inference_metadata,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "DescribeModels on %s failed: %s %s", worker.address, exc.code().name, exc.details()
            )
            return
        worker.set_models(response)
        self._notify()

    async def describe_all(self) -> None:
        """Refresh every worker's hosted models."""
        await asyncio.gather(*(self.describe(w) for w in self.workers))

    def _add(self, address: str) -> None:
        if address in self._by_address:
            return
        is_ejected = self.outliers.is_ejected if self.outliers else (lambda address: False)
        worker = Worker(
            address, self._settings, self._on_batch, self._credentials, is_ejected, self._on_call
        )
        self.workers = [*self.workers, worker]
        self._by_address[address] = worker
        self._first_seen[address] = asyncio.Event()
        worker.watch_task = asyncio.create_task(self._watch(worker), name=f"health-watch {address}")
        worker.probe_task = asyncio.create_task(self._probe(worker), name=f"health-check {address}")
        log.info("worker %s joined the pool", address)
        self._notify()

    async def _remove(self, address: str) -> None:
        worker = self._by_address.pop(address, None)
        if worker is None:
            return
        self._first_seen.pop(address, None)
        self.workers = [w for w in self.workers if w is not worker]
        if self.outliers is not None:
            self.outliers.forget(address)
        worker.health_serving = False
        worker.coalescer.close()
        if worker.hop is not None:
            worker.hop.close()
        if worker.link is not None:
            worker.link.close("it left the pool")
        tasks = [t for t in (worker.watch_task, worker.probe_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.channel.close()
        log.info("worker %s left the pool", address)
        self._notify()

    async def _watch(self, worker: Worker) -> None:
        attempt = 0
        request = health_pb2.HealthCheckRequest(service="")
        while True:
            try:
                async for reply in worker.health.Watch(request):
                    attempt = 0
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        await self.describe(worker)
                        if self._on_ready is not None and not worker.serving:
                            await self._on_ready(worker)
                        self._set_serving(worker, worker.described)
                    else:
                        self._set_serving(worker, False)
                    self._mark_seen(worker)
            except grpc.aio.AioRpcError as exc:
                if worker.serving:
                    log.warning(
                        "worker %s health stream broke: %s", worker.address, exc.code().name
                    )
            worker.lost()
            self._set_serving(worker, False)
            self._mark_seen(worker)
            delay_s = _RECONNECT_BACKOFF_S[min(attempt, len(_RECONNECT_BACKOFF_S) - 1)]
            attempt += 1
            await asyncio.sleep(delay_s * (0.8 + 0.4 * random.random()))

    def _mark_seen(self, worker: Worker) -> None:
        event = self._first_seen.get(worker.address)
        if event is not None:
            event.set()

    def _set_serving(self, worker: Worker, serving: bool) -> None:
        if worker.health_serving != serving:
            before = worker.serving
            worker.health_serving = serving
            self._log_transition(worker, before)
            self._notify()

    def _log_transition(self, worker: Worker, before: bool) -> None:
        if worker.serving != before:
            state = "SERVING" if worker.serving else "not serving"
            log.info("worker %s is %s", worker.address, state)

    async def _probe(self, worker: Worker) -> None:
        """Health Check with a deadline every `health_check_interval_s`: notices a hang fast.

        A stopped or partitioned worker keeps its health stream open and says nothing, so
        only a check with a deadline notices it. A check is sent every interval without
        waiting for the one before (at most one timeout's worth in flight), so
        `health_check_unhealthy_threshold` late answers in a row take about one timeout plus
        `threshold - 1` intervals; they mark it unresponsive (not routable, not counted for
        readiness) and, if another worker serves, fail its calls in flight as retryable so
        their callers go elsewhere before their deadline. One late answer alone (a CPU
        hiccup) does not. `health_check_healthy_threshold` answers in time bring it back.
        """
        interval_s = self._settings.health_check_interval_s
        timeout_s = self._settings.health_check_timeout_s
        most_in_flight = math.ceil(timeout_s / interval_s) + 1
        loop = asyncio.get_running_loop()
        checks: set[asyncio.Task[None]] = set()
        try:
            while True:
                started_s = loop.time()
                if len(checks) < most_in_flight:
                    check = asyncio.create_task(self._check(worker, timeout_s))
                    checks.add(check)
                    check.add_done_callback(checks.discard)
                await asyncio.sleep(max(interval_s - (loop.time() - started_s), 0.0))
        finally:
            for check in checks:
                check.cancel()

    async def _check(self, worker: Worker, timeout_s: float) -> None:
        """One health Check; its result goes to the worker's streak."""
        request = health_pb2.HealthCheckRequest(service="")
        try:
            await worker.health.Check(request, timeout=timeout_s)
            answered = True
        except grpc.aio.AioRpcError as exc:
            # a refused connection is the health stream's business (process gone)
            answered = exc.code() not in (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            )
        if not answered and worker.responsive:
            log.debug(
                "worker %s missed a health check (%d in a row of %d to take it out)",
                worker.address, worker.checks.failures + 1, worker.checks.unhealthy_threshold,
            )  # fmt: skip
        self._set_responsive(worker, worker.checks.record(answered))

    def _set_responsive(self, worker: Worker, responsive: bool) -> None:
        if worker.responsive == responsive:
            return
        before = worker.serving
        worker.responsive = responsive
        if not responsive:
            log.warning(
                "worker %s did not answer %d health checks in a row within %.2f s: "
                "out of rotation",
                worker.address, worker.checks.unhealthy_threshold,
                self._settings.health_check_timeout_s,
            )  # fmt: skip
            if before:
                self.on_unresponsive(worker)
            if any(w.serving for w in self.workers if w is not worker):
                worker.coalescer.abort(f"worker {worker.address} stopped answering")
        self._log_transition(worker, before)
        self._notify()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.describe_refresh_s)
            await asyncio.gather(*(self.describe(w) for w in self.workers if w.serving))

    async def _dns_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.dns_refresh_s)
            await self._resolve_once()

    async def _resolve_once(self) -> None:
        assert self._settings.workers_dns is not None
        host, port = parse_address(self._settings.workers_dns)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            log.warning("resolving %s failed: %s (keeping the current pool)", host, exc)
            return
        found = {_format_address(str(info[4][0]), port) for info in infos}
        for address in sorted(found - set(self._by_address)):
            self._add(address)
        for address in sorted(set(self._by_address) - found):
            await self._remove(address)


def _format_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
