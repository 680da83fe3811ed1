"""Wiring of the worker's HTTP/REST v2 front door: same host, loop and limits as its gRPC."""

from __future__ import annotations

import logging

from protos.http_server import HttpServer, http_bind_port
from runner_worker.hosting import ModelHost
from runner_worker.http_servicer import WorkerHttpBackend
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle
from runner_worker.settings import WorkerSettings

__all__ = ["start_http", "DEFAULT_HTTP_PORT"]

DEFAULT_HTTP_PORT = 8100  # beside the worker's gRPC 8101 and metrics 8102
_log = logging.getLogger("runner_worker")


async def start_http(
    settings: WorkerSettings,
    host: ModelHost,
    plane: InferencePlane,
    life: Lifecycle,
    *,
    secured: bool = False,
) -> HttpServer | None:
    """Bind and start the HTTP server on the running loop (None when ``--http-port`` < 0).

    ``secured`` (the worker's gRPC requires credentials or TLS): HTTP stays off, since it
    would bypass them; clients use the gateway's HTTP, which has the token and TLS.
    """
    port = http_bind_port(settings.http_port, settings.port, DEFAULT_HTTP_PORT)
    if port is None:
        return None
    if secured:
        _log.warning(
            "HTTP/REST stays off on this worker: its gRPC requires credentials or TLS, which "
            "the worker's HTTP front door does not check yet (use the gateway's HTTP)"
        )
        return None
    server = HttpServer(
        WorkerHttpBackend(host, plane, life, settings), max_body_bytes=settings.max_message_bytes
    )
    await server.start(settings.host, port)
    return server
