"""The `/metrics` HTTP endpoint both processes serve: its own interface, optional TLS/basic auth.

`prometheus_client.start_http_server` does TLS but not basic auth, so this is the same WSGI
app (`make_wsgi_app`) in a small threaded server with both. Basic auth compares in constant
time; the password file is read once at start and never logged. grpc-free.
"""

from __future__ import annotations

import base64
import hmac
import pathlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from protos.errors import InvalidArgument

__all__ = ["MetricsServer", "metrics_access", "serve_metrics", "read_basic_auth"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake or a dropped scraper is not worth a traceback on stderr."""


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        """No access log (it would go to stderr on every scrape)."""


class MetricsServer:
    """A running /metrics server: its port, and `close()`."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.port = int(httpd.server_port)

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()


def read_basic_auth(path: str) -> tuple[bytes, bytes]:
    """`user:password` from the first line of `path`."""
    try:
        line = pathlib.Path(path).read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        raise InvalidArgument(f"cannot read a `user:password` line from {path}") from None
    user, sep, password = line.partition(":")
    if not sep or not user or not password:
        raise InvalidArgument(f"the basic auth file {path} must hold one `user:password` line")
    return user.encode(), password.encode()


def _basic_auth(app: Callable[..., Any], user: bytes, password: bytes) -> Callable[..., Any]:
    expected = b"Basic " + base64.b64encode(user + b":" + password)

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)  # type: ignore[no-any-return]
        start_response(
            "401 Unauthorized",
            [("WWW-Authenticate", 'Basic realm="runnerfleet metrics"'), ("Content-Length", "0")],
        )
        return [b""]

    return guarded


def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_cafile: str | None = None,
    basic_auth_file: str | None = None,
) -> MetricsServer:
    """Serve `registry` at any path on host:port (0 = a free port) on a daemon thread."""
    app: Callable[..., Any] = make_wsgi_app(registry)
    if basic_auth_file:
        app = _basic_auth(app, *read_basic_auth(basic_auth_file))
    server_class = _Server6 if ":" in host else _Server
    httpd = make_server(host.strip("[]"), port, app, server_class, handler_class=_QuietHandler)
    if certfile and keyfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile, keyfile)
        if client_cafile:
            context.load_verify_locations(client_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
        # the handshake runs in the request's thread, so a silent client blocks no one
        httpd.socket = context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)


def metrics_access(settings: Any) -> dict[str, str | None]:
    """`serve_metrics` keyword arguments from a TrustSettings (None: plain HTTP, no auth)."""
    if settings is None:
        return {}
    return {
        "certfile": settings.metrics_tls_cert,
        "keyfile": settings.metrics_tls_key,
        "client_cafile": settings.metrics_tls_client_ca,
        "basic_auth_file": settings.metrics_basic_auth_file,
    }
