"""Gateway wiring and lifecycle: metrics, pool, server, health, reflection, port file, SIGTERM.

Health is honest: gRPC health for "" and "inference.GRPCInferenceService" is SERVING only while
at least one worker is SERVING (and answering its health checks), NOT_SERVING otherwise, and
follows the pool as workers come and go; a draining gateway stays NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from api_gateway.auth import auth_interceptor, server_credentials, worker_credentials
from api_gateway.forwarder import Forwarder
from api_gateway.hedging import Hedger
from api_gateway.http_app import start_http
from api_gateway.metrics import GatewayMetrics
from api_gateway.outlier import OutlierDetector
from api_gateway.plane import GatewayPlane
from api_gateway.pool import WorkerPool
from api_gateway.servicer import SERVICE_NAME, GatewayServicer, generic_handler
from api_gateway.settings import GatewaySettings
from api_gateway.shm import SharedMemoryForwarder
from protos import event_loop, heap
from protos.auth import is_loopback
from protos.http_server import HttpServer
from protos.port_file import write_port_file
from protos.runtime_settings import RuntimeSettings
from protos.tracing import configure_tracing

__all__ = ["GatewayApp", "serve", "run", "write_port_file"]

log = logging.getLogger(__name__)


class GatewayApp:
    """One gateway process: owns the server, the pool and the metrics endpoint."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.worker_credentials = worker_credentials(settings)  # read once; tokens stay inside
        self.outliers = OutlierDetector(
            settings.outlier_policy(),
            time.monotonic,
            on_eject=self._on_eject,
            on_return=self._on_return,
        )
        self.tracing = configure_tracing("runnerfleet-gateway")
        self.shm = SharedMemoryForwarder(self._workers)
        self.pool = WorkerPool(
            settings,
            on_change=self._on_pool_change,
            on_batch=self.metrics.observe_batch,
            on_call=self.metrics.observe_call,
            credentials=self.worker_credentials,
            outliers=self.outliers,
            on_ready=self.shm.replay,
        )
        self.pool.on_unresponsive = lambda worker: self.metrics.ejections.labels(
            worker.address, "health"
        ).inc()
        self.forwarder = Forwarder(
            self.pool,
            max_inflight_per_worker=settings.max_inflight_per_worker,
            max_attempts=settings.max_attempts,
            outliers=self.outliers,
            hedger=Hedger(settings.hedge_policy()),
            route_wait_s=settings.route_wait_s,
            on_retry=lambda model: self.metrics.retries.labels(model).inc(),
            on_hedge=lambda model: self.metrics.hedges.labels(model).inc(),
            on_not_found=lambda worker: self._spawn(self.pool.describe(worker)),
            on_reject=lambda reason: self.metrics.rejected.labels(reason).inc(),
            tracing=self.tracing,
        )
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._health_ready = False  # start() finished and not draining: health follows the pool
        self._health_status: int | None = None
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.grpc_port = 0
        self.metrics_port = 0
        self.http: HttpServer | None = None  # HTTP/REST v2 front door (None: --http-port -1)
        self.http_port: int | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._known_models: set[str] = set()
        self.apis: Any = None
        self.plane: GatewayPlane | None = None  # what every front door calls

    def _workers(self) -> list[Any]:
        return self.pool.workers

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str = "pool-refresh") -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_eject(self, address: str, reason: str, duration_s: float) -> None:
        log.warning("worker %s ejected (%s) for %.1f s", address, reason, duration_s)
        self.metrics.ejections.labels(address, reason).inc()
        loop = self._loop
        if loop is not None:  # any thread: the pool is told on its own loop

            def on_loop() -> None:
                self.pool.notify()
                loop.call_later(duration_s + 0.01, self.pool.notify)  # ends it without traffic

            loop.call_soon_threadsafe(on_loop)

    def _on_return(self, address: str) -> None:
        log.info("worker %s is back from ejection (on probation)", address)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.pool.notify)

    def _sync_health(self) -> None:
        """Make gRPC health say what the pool can do: SERVING iff a worker is SERVING."""
        if not self._health_ready:
            return
        serving = any(w.serving for w in self.pool.workers)
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if status == self._health_status:
            return
        self._health_status = status
        log.info("gateway health: %s", "SERVING" if serving else "NOT_SERVING (no worker serves)")
        self._spawn(self._set_health(status), "health-sync")

    async def _set_health(self, status: int) -> None:
        if self._health_status != status or not self._health_ready:
            return  # a newer change (or a drain) superseded this one
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)  # type: ignore[arg-type]

    def _on_pool_change(self, pool: WorkerPool) -> None:
        self.metrics.sync_workers(pool.workers)
        self._sync_health()
        for worker in pool.workers:
            for name, _version in worker.models:
                if name not in self._known_models:
                    self._known_models.add(name)
                    self.metrics.touch_model(name)

    async def start(self) -> None:
        """Bind everything, discover workers, let health follow the pool, write the port file."""
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        policy, auth = auth_interceptor(
            settings, on_reject=lambda reason: self.metrics.rejected.labels(reason).inc()
        )
        credentials = server_credentials(settings)
        apis = None
        if settings.service:
            from api_gateway.service_api import ServiceApiHost

            apis = ServiceApiHost.load(settings.service, self.forwarder)
            apis.bind(asyncio.get_running_loop())
            await apis.startup()
            self.apis = apis
            for name in apis.names():
                self.metrics.touch_model(name)
        metrics_host = settings.metrics_host or settings.host
        self.metrics_port = self.metrics.serve(metrics_host, settings.metrics_port, settings)
        interceptors = [auth] if auth is not None else []
        if not policy.enabled and not is_loopback(settings.host):
            log.warning(
                "serving %s without authentication: anyone who reaches it may call every rpc "
                "(configure tokens or --tls-client-ca; docs/SECURITY.md)",
                settings.host,
            )
        limit = settings.max_message_bytes
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.plane = GatewayPlane(
            self.pool,
            self.forwarder,
            self.metrics,
            max_inflight=settings.max_inflight,
            apis=apis,
            statistics_timeout_s=settings.statistics_timeout_s,
            repository_timeout_s=settings.repository_timeout_s,
            tracing=self.tracing,
            shm=self.shm,
        )
        self.runtime = RuntimeSettings(self.tracing)  # Triton's trace and log settings
        self.server.add_generic_rpc_handlers(
            (generic_handler(GatewayServicer(self.plane, self.runtime)),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        address = f"{settings.host}:{settings.port}"
        if credentials is not None:
            self.grpc_port = self.server.add_secure_port(address, credentials)
        else:
            self.grpc_port = self.server.add_insecure_port(address)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        self.http = await start_http(
            settings,
            self.plane,
            policy=policy,
            apis=apis,
            on_reject=lambda reason: self.metrics.rejected.labels(reason).inc(),
            runtime=self.runtime,
        )
        self.http_port = self.http.port if self.http is not None else None
        await self.pool.start()
        # the libraries, pool and channels live as long as the process; young collections
        # stay short, so calls in flight never wait out a long one (protos/heap.py)
        heap.settle(heap.GATEWAY_YOUNG_THRESHOLD)
        self._health_ready = True
        self._on_pool_change(self.pool)
        if settings.port_file:
            write_port_file(settings.port_file, self.grpc_port, self.metrics_port, self.http_port)
        log.info(
            "listening grpc=%s:%d metrics=%s:%d http=%s:%s tls=%s auth=%s worker_tls=%s workers=%d "
            "loop=%s",
            settings.host, self.grpc_port, metrics_host, self.metrics_port, settings.host,
            self.http_port if self.http_port is not None else "off",
            credentials is not None, policy.enabled, self.worker_credentials.channel is not None,
            len(self.pool.workers), event_loop.resolved(settings.event_loop),
        )  # fmt: skip

    async def drain(self) -> bool:
        """Report NOT_SERVING, refuse new model requests (UNAVAILABLE), wait for those in flight."""
        self._health_ready = False
        await self.health.enter_graceful_shutdown()
        if self.plane is None:
            return True
        self.plane.start_draining()
        return await self.plane.wait_idle(self.settings.stop_grace_s)

    async def stop(self) -> None:
        """Drain, then stop the server and close the pool and the metrics endpoint."""
        await self.drain()
        if self.http is not None:
            await self.http.stop()
        if self.server is not None:
            await self.server.stop(self.settings.stop_grace_s)
        await self.pool.close()
        for task in list(self._background):
            task.cancel()
        self.metrics.shutdown()
        self.tracing.shutdown()
        if self.apis is not None:
            await self.apis.shutdown()
            self.apis.close()


async def serve(settings: GatewaySettings, *, exit_after_drain: bool = False) -> None:
    """Run the gateway until SIGTERM or SIGINT, then drain and stop.

    With `exit_after_drain` (the CLI) the process exits right after the drain instead of
    calling grpc's server.stop(): grpc-core cancels calls that reached it but no handler yet
    with CANCELLED (grpc/grpc#41785), while a closed connection reads as UNAVAILABLE, the code
    clients retry on. Nothing is lost: requests in flight have finished, new ones were refused.
    """
    app = GatewayApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    try:
        await stop.wait()
        log.info("stopping: draining requests in flight (grace %.1f s)", settings.stop_grace_s)
        if exit_after_drain:
            idle = await app.drain()
            if app.apis is not None:
                await app.apis.shutdown()  # the service's on_shutdown hooks, after the drain
            log.info("stopped (%s)", "drained" if idle else "grace period over")
            app.pool.close_hops()  # its shared-memory slots: os._exit skips pool.close()
            app.tracing.shutdown()  # flush spans: os._exit skips atexit
            logging.shutdown()
            os._exit(0)
    finally:
        with contextlib.suppress(Exception):
            await app.stop()


def run(settings: GatewaySettings) -> None:
    """Blocking entry point for `runnerfleet gateway`."""
    event_loop.run(serve(settings, exit_after_drain=True), settings.event_loop)
