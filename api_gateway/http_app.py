"""Wiring of the gateway's HTTP front door: v2 routes, Service API routes, TLS and token.

Same process, loop, message limit, bearer token and TLS files as the gateway's gRPC server.
"""

from __future__ import annotations

from typing import Any

from api_gateway.http_servicer import GatewayHttpBackend
from api_gateway.plane import GatewayPlane
from api_gateway.service_http import add_service_routes
from api_gateway.settings import GatewaySettings
from protos.auth import AuthPolicy
from protos.http_server import HttpServer, http_bind_port, server_ssl_context
from protos.runtime_settings import RuntimeSettings

__all__ = ["start_http", "DEFAULT_HTTP_PORT"]

DEFAULT_HTTP_PORT = 8000  # Triton's: HTTP 8000, gRPC 8001, metrics 8002


async def start_http(
    settings: GatewaySettings,
    plane: GatewayPlane,
    *,
    policy: AuthPolicy,
    apis: Any = None,
    on_reject: Any = lambda reason: None,
    runtime: RuntimeSettings | None = None,
) -> HttpServer | None:
    """Bind and start the gateway's HTTP server (None when ``--http-port`` < 0)."""
    port = http_bind_port(settings.http_port, settings.port, DEFAULT_HTTP_PORT)
    if port is None:
        return None
    server = HttpServer(
        GatewayHttpBackend(plane),
        max_body_bytes=settings.max_message_bytes,
        policy=policy,
        ssl_context=server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca),
        on_reject=on_reject,
        runtime=runtime,
    )
    if apis is not None:
        add_service_routes(server.app, apis, plane.infer)
    await server.start(settings.host, port)
    return server
