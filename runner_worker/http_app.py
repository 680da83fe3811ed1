"""Wiring of the worker's HTTP/REST v2 front door: same host, loop, limits, auth and TLS as its
gRPC (the scoped bearer tokens and client-certificate identities of ``protos.auth``, enforced
by ``protos.http_server`` as on the gateway's HTTP)."""

from __future__ import annotations

from protos.auth import AuthPolicy
from protos.http_server import HttpServer, http_bind_port, server_ssl_context
from protos.runtime_settings import RuntimeSettings
from protos.shm import SharedMemoryRegistry
from runner_worker.hosting import ModelHost
from runner_worker.http_servicer import WorkerHttpBackend
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle
from runner_worker.settings import WorkerSettings

__all__ = ["start_http", "DEFAULT_HTTP_PORT"]

DEFAULT_HTTP_PORT = 8100  # beside the worker's gRPC 8101 and metrics 8102


async def start_http(
    settings: WorkerSettings,
    host: ModelHost,
    plane: InferencePlane,
    life: Lifecycle,
    *,
    policy: AuthPolicy,
    shm: SharedMemoryRegistry | None = None,
    runtime: RuntimeSettings | None = None,
) -> HttpServer | None:
    """Bind and start the HTTP server on the running loop (None when ``--http-port`` < 0).

    ``policy`` is the one the gRPC server enforces; TLS comes from the same files; ``shm`` is
    the registry gRPC registers regions in (one set of regions, whichever door registered).
    """
    port = http_bind_port(settings.http_port, settings.port, DEFAULT_HTTP_PORT)
    if port is None:
        return None
    server = HttpServer(
        WorkerHttpBackend(host, plane, life, settings, shm),
        max_body_bytes=settings.max_message_bytes,
        policy=policy,
        ssl_context=server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca),
        runtime=runtime,
    )
    await server.start(settings.host, port)
    return server
