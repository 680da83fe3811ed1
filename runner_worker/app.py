"""Worker wiring and lifecycle: bind, report ports, load and warm models, serve, drain, exit.

Order: the gRPC server binds and starts with health NOT_SERVING, ``/metrics`` starts, the
port file is written, models load and warm up, health turns SERVING. SIGTERM (or SIGINT)
stops admitting (health NOT_SERVING, batchers refuse new work), lets queued work finish,
then stops the server gracefully.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protos import event_loop, grpc_service_pb2, internal_pb2
from protos import grpc_service_pb2_grpc as pb_grpc
from protos import internal_pb2_grpc as ipb_grpc
from protos.auth import ScopedAuthInterceptor, is_loopback, policy_from_settings
from protos.auth import server_credentials as tls_server_credentials
from protos.errors import RunnerFleetError
from protos.parse_guard import add_guarded
from protos.port_file import write_port_file
from protos.runtime_settings import RuntimeSettings
from protos.shm import SharedMemoryRegistry
from protos.tracing import configure_tracing
from runner_worker.device import configure_runtime
from runner_worker.hosting import ModelHost
from runner_worker.http_app import start_http
from runner_worker.inference import InferencePlane
from runner_worker.internal_servicer import InternalServicer
from runner_worker.lifecycle import Lifecycle, State
from runner_worker.local_server import LocalServer
from runner_worker.metrics import WorkerMetrics
from runner_worker.service_runners import HostedRunner, service_runners
from runner_worker.servicer import InferenceServicer
from runner_worker.settings import WorkerSettings
from store.fs_store import FileStore
from store.integrity import IntegrityError, SignatureError

__all__ = ["serve", "run", "write_port_file"]

_log = logging.getLogger("runner_worker")


def _worker_id(settings: WorkerSettings, port: int) -> str:
    if settings.worker_id:
        return settings.worker_id
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"{host}:{port}"


async def serve(settings: WorkerSettings) -> int:
    """Run the worker until SIGTERM/SIGINT; return the process exit status."""
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
        # the gateway pings every second to notice a hung worker (api_gateway/pool.py): allow it
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 500),
        ("grpc.http2.max_ping_strikes", 0),
    ]
    # every rpc but health needs a credential with its scope (protos.auth); tokens read once
    policy = policy_from_settings(settings)
    interceptors = [ScopedAuthInterceptor(policy)] if policy.enabled else []
    server = grpc.aio.server(interceptors=interceptors, options=options)
    credentials = tls_server_credentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    )
    address = f"{settings.host}:{settings.port}"
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if not policy.enabled and not is_loopback(settings.host):
        _log.warning(
            "serving %s without authentication: anyone who reaches it may infer, load, unload "
            "and drain (configure tokens or --tls-client-ca; docs/SECURITY.md)",
            settings.host,
        )
    worker_id = _worker_id(settings, port)
    metrics = WorkerMetrics(worker_id, settings.device)
    life = Lifecycle(worker_id, settings.device, metrics)
    await life.enter(State.LOADING)
    tracing = configure_tracing("runnerfleet-worker")
    host = ModelHost(
        settings, metrics, store_get=FileStore(settings.store_root).get, tracing=tracing
    )
    shm = SharedMemoryRegistry()
    plane = InferencePlane(host, metrics, shm, tracing)
    runtime = RuntimeSettings(tracing)  # Triton's trace and log settings, gRPC and HTTP
    drained: asyncio.Task[bool] | None = None

    async def drain() -> None:
        nonlocal drained
        if drained is None:
            await life.enter(State.DRAINING)
            drained = asyncio.create_task(host.drain(settings.drain_timeout_s), name="drain")

    # parse failures are INVALID_ARGUMENT with one rate-limited log line, not UNKNOWN + traceback
    add_guarded(
        pb_grpc.add_GRPCInferenceServiceServicer_to_server,
        InferenceServicer(host, plane, life, settings, shm, runtime),
        server,
    )
    # gateways on this host: ModelInfer frames over a Unix socket, offered in DescribeModels
    local = LocalServer(plane, settings.max_message_bytes)
    internal = InternalServicer(host, plane, life, settings, drain)
    add_guarded(ipb_grpc.add_WorkerInternalServicer_to_server, internal, server)
    health_pb2_grpc.add_HealthServicer_to_server(life.health, server)
    reflection.enable_server_reflection(
        (
            grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
            internal_pb2.DESCRIPTOR.services_by_name["WorkerInternal"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    await server.start()
    if settings.local_link and credentials is None and not policy.enabled:
        internal.local_socket = await local.start()
    # HTTP enforces the same policy and TLS files as gRPC (protos.http_server)
    http = await start_http(settings, host, plane, life, policy=policy, shm=shm, runtime=runtime)
    metrics_host = settings.metrics_host or settings.host
    metrics_port = metrics.serve(metrics_host, settings.metrics_port, settings)
    if settings.port_file:
        write_port_file(settings.port_file, port, metrics_port, http.port if http else None)
    http_text = f" http={settings.host}:{http.port}" if http else ""
    # always printed (whatever the log level): process supervisors wait for this line
    print(
        f"listening grpc={settings.host}:{port} metrics={metrics_host}:{metrics_port} "
        f"tls={credentials is not None} auth={policy.enabled}"
        + http_text
        + f" loop={event_loop.resolved(settings.event_loop)}",
        file=sys.stderr,
        flush=True,
    )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, life.stop_requested.set)

    status = 0
    try:
        loading = asyncio.create_task(_load_all(host, settings), name="load-models")
        stop_wait = asyncio.create_task(life.stop_requested.wait(), name="stop-wait")
        await asyncio.wait({loading, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if loading.done():
            loading.result()
            await life.enter(State.SERVING)
            await stop_wait
        else:
            loading.cancel()
        stop_wait.cancel()
        await drain()
        assert drained is not None
        if not await drained:
            _log.warning("drain timed out after %.1f s; stopping anyway", settings.drain_timeout_s)
    except RunnerFleetError as exc:
        _log.error("worker failed: %s", exc.message)
        status = 1
    except Exception:
        _log.exception("worker failed")
        status = 1
    finally:
        await life.enter(State.STOPPED)
        if http is not None:
            await http.stop()
        await server.stop(settings.stop_grace_s)
        await local.stop()
        await host.close()
        shm.close()
        tracing.shutdown()
    _log.info("worker %s stopped", worker_id)
    return status


async def _load_all(host: ModelHost, settings: WorkerSettings) -> None:
    configure_runtime(settings)
    for tag in settings.models:
        try:
            await host.load(tag)
        except (IntegrityError, SignatureError):
            continue  # refused by the store's integrity/signature check (logged): not served
    if settings.service:
        for hosted in await asyncio.to_thread(service_runners, settings.service, settings.runners):
            await host.host(hosted.name, functools.partial(_source, hosted), hosted.options)
    configure_runtime(settings)


def _source(hosted: HostedRunner) -> Any:
    return hosted.source


def run(settings: WorkerSettings) -> int:
    """Run the worker on a fresh event loop (the process's one loop)."""
    return event_loop.run(serve(settings), settings.event_loop)
