"""Optional bearer-token auth (a server interceptor) and TLS credentials, both from files or env.

Tokens and keys are read once at start, compared in constant time, and never logged or put in
error messages. gRPC health stays open so orchestrators can probe without the token.
"""

from __future__ import annotations

import hmac
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from api_gateway.settings import GatewaySettings
from protos.errors import InvalidArgument

__all__ = ["BearerTokenInterceptor", "load_token", "server_credentials", "OPEN_METHOD_PREFIXES"]

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
_DENIED = "missing or wrong bearer token: send metadata `authorization: Bearer <token>`"


def load_token(settings: GatewaySettings) -> str | None:
    """The expected token: from `--auth-token-file` / RUNNERFLEET_AUTH_TOKEN_FILE, else the env."""
    if settings.auth_token_file:
        try:
            token = pathlib.Path(settings.auth_token_file).read_text().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the auth token file: {exc.strerror}") from None
        if not token:
            raise InvalidArgument(f"the auth token file {settings.auth_token_file} is empty")
        return token
    return settings.auth_token or None


def server_credentials(settings: GatewaySettings) -> grpc.ServerCredentials | None:
    """TLS credentials (mTLS when a client CA is given), or None for plaintext."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    key = _read(settings.tls_key, "TLS key")
    cert = _read(settings.tls_cert, "TLS certificate")
    ca = _read(settings.tls_client_ca, "client CA") if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def _read(path: str, what: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} file {path}: {exc.strerror}") from None


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` with UNAUTHENTICATED."""

    def __init__(self, token: str, on_reject: Callable[[], None] = lambda: None) -> None:
        self._token = token.encode()
        self._on_reject = on_reject

    def _allowed(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                scheme, _, credential = str(value).partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    credential.strip().encode(), self._token
                )
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES) or self._allowed(
            handler_call_details.invocation_metadata
        ):
            return await continuation(handler_call_details)
        self._on_reject()
        handler = await continuation(handler_call_details)
        return _denying(handler)


async def _deny(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, _DENIED)


def _denying(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that refuses without reading the request."""
    if handler is None or not handler.request_streaming and not handler.response_streaming:
        return grpc.unary_unary_rpc_method_handler(_deny)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_deny)
    return grpc.unary_stream_rpc_method_handler(_deny)
