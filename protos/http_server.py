"""The HTTP/REST v2 front door (Triton's routes) on aiohttp, over any process's data plane.

Worker and gateway each pass a ``V2Backend`` (their data plane, in protobuf messages, the same
ones their gRPC servicers use) and get the same routes, error bodies (``{"error": reason}``
with ``protos.status.to_http_status``), body limit (the gRPC max message bytes), optional
bearer-token auth and TLS. It runs on the process's one asyncio loop, beside grpc.aio.

Auth is the gRPC side's rule (``protos.auth``), route by route: health is open; every other
route needs a bearer token or verified client certificate with the scope of the rpc it
stands for (``/stats`` and repository load/unload: ``control``; the rest, system shared
memory included as SystemSharedMemory* is on gRPC: ``inference``).
A missing or wrong credential is 401 with ``WWW-Authenticate: Bearer`` (RFC 6750; with
``error="invalid_token"`` when one was presented), a valid one without the scope is 403
(``error="insufficient_scope"``). ``server_ssl_context`` builds the TLS side from the same
certificate, key and client CA files the process's gRPC server uses.

System shared memory, Triton's HTTP extension: ``GET /v2/systemsharedmemory/status`` and
``.../region/{name}/status`` (a JSON list of ``{name, key, offset, byte_size}``),
``POST .../region/{name}/register`` (body ``{key, offset, byte_size}``), ``POST
.../unregister`` (every region) and ``.../region/{name}/unregister``, over the backend's
``shm_*`` (the registry or plane gRPC uses). ``/v2/cudasharedmemory/...`` answers 501 with the
reason, as the CUDA rpcs do.

Triton's logging and trace extensions, given the process's ``RuntimeSettings``: ``GET|POST
/v2/logging`` (a JSON object of ``log_*`` settings, native JSON types) and ``GET|POST
/v2/trace/setting`` and ``/v2/models/{m}/trace/setting`` (values are strings, ``trace_level``
a list, as Triton answers; a POSTed ``null`` clears a setting). A POST answers the settings
after the change. These need the ``control`` scope, as the rpcs do.

``build_infer_request`` is the one place an HTTP infer (headers + body) becomes the internal
``ModelInferRequest``; it runs in the request's task, so a hook there (a contextvar such as a
trace context) is visible to the backend call that follows.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from protos import grpc_service_pb2 as pb
from protos import http_codec
from protos.auth import CONTROL, INFERENCE, AuthPolicy
from protos.cuda_shm import cuda_shm_refusal
from protos.errors import (
    InvalidArgument,
    PermissionDenied,
    RunnerFleetError,
    Unauthenticated,
    shown,
)
from protos.runtime_settings import RuntimeSettings
from protos.shm import RegionStatus
from protos.status import to_http_status

__all__ = [
    "V2Backend",
    "HttpServer",
    "build_infer_request",
    "server_ssl_context",
    "error_response",
    "json_response",
    "OPEN_PATHS",
    "PROTOCOL",
    "http_bind_port",
]

log = logging.getLogger(__name__)

PROTOCOL = "http"  # the `protocol` metrics label of requests that came in over HTTP
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/livez", "/readyz"})
_DENIED = (
    "missing or wrong bearer token: send the header `Authorization: Bearer <token>` "
    "(or a client certificate the server trusts)"
)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class V2Backend(Protocol):
    """What a process offers the v2 routes: its data plane, in protobuf messages."""

    async def server_ready(self) -> bool: ...

    async def server_metadata(self) -> pb.ServerMetadataResponse: ...

    async def model_ready(self, name: str, version: str) -> bool: ...

    async def model_metadata(self, name: str, version: str) -> pb.ModelMetadataResponse: ...

    async def model_config(self, name: str, version: str) -> Any: ...

    async def model_statistics(self, name: str, version: str) -> pb.ModelStatisticsResponse: ...

    async def infer(
        self, request: pb.ModelInferRequest, deadline_s: float | None, traceparent: str | None
    ) -> pb.ModelInferResponse: ...

    async def repository_index(self, ready: bool) -> pb.RepositoryIndexResponse: ...

    async def load(self, request: pb.RepositoryModelLoadRequest) -> None: ...

    async def unload(self, request: pb.RepositoryModelUnloadRequest) -> None: ...

    async def shm_status(self, name: str) -> list[RegionStatus]: ...

    async def shm_register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None: ...

    async def shm_unregister(self, name: str) -> None: ...


def http_bind_port(http_port: int | None, grpc_port: int, default_port: int) -> int | None:
    """The port to bind HTTP on: None = off (a negative ``--http-port``).

    Unset, it is the process's default (Triton's habit: HTTP beside gRPC), except when gRPC
    takes any free port (``--port 0``: tests, local clusters), where HTTP does the same, so
    processes started side by side never fight over the default.
    """
    if http_port is None:
        return 0 if grpc_port == 0 else default_port
    return None if http_port < 0 else http_port


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=http_codec.dumps(value), status=status, content_type=http_codec.JSON_CONTENT_TYPE
    )


def error_response(error: BaseException) -> web.Response:
    """``{"error": reason}`` with the status the error's code maps to."""
    message = error.message if isinstance(error, RunnerFleetError) else f"{error}"
    return json_response({"error": message}, to_http_status(error))


def build_infer_request(
    model_name: str, model_version: str, headers: Mapping[str, str], body: bytes
) -> http_codec.HttpInferRequest:
    """The internal request of one HTTP infer: content type, binary header length, tensors,
    and the W3C ``traceparent`` header (handed to the backend as gRPC metadata would be)."""
    http_codec.check_content_type(headers.get("Content-Type"))
    header_length = http_codec.parse_header_length(headers.get(http_codec.HEADER_LENGTH), len(body))
    parsed = http_codec.infer_request_from_http(model_name, model_version, body, header_length)
    return parsed._replace(traceparent=headers.get("traceparent"))


def _infer_body(answer: http_codec.HttpBody) -> web.Response:
    response = web.Response(body=answer.body, content_type=answer.content_type)
    if answer.header_length is not None:
        response.headers[http_codec.HEADER_LENGTH] = str(answer.header_length)
    return response


async def _read_json(request: web.Request, what: str) -> dict[str, Any]:
    """An optional JSON object body (empty = {})."""
    body = await request.read()
    if not body:
        return {}
    http_codec.check_content_type(request.headers.get("Content-Type"))
    doc = http_codec.parse_json(body, what)
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return doc


class _Routes:
    """Triton's HTTP/REST v2 routes over one backend."""

    def __init__(self, backend: V2Backend) -> None:
        self._backend = backend

    def add_to(self, app: web.Application) -> None:
        model = "/v2/models/{model}"
        versioned = "/v2/models/{model}/versions/{version}"
        app.router.add_get("/v2/health/live", self.live)
        app.router.add_get("/v2/health/ready", self.ready)
        app.router.add_get("/livez", self.live)  # BentoML's probes, for its users' manifests
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/v2", self.server_metadata)
        app.router.add_get("/v2/models/stats", self.statistics)
        for base in (model, versioned):
            app.router.add_get(base, self.model_metadata)
            app.router.add_get(base + "/ready", self.model_ready)
            app.router.add_get(base + "/config", self.model_config)
            app.router.add_get(base + "/stats", self.statistics)
            app.router.add_post(base + "/infer", self.infer)
        app.router.add_post("/v2/repository/index", self.repository_index)
        app.router.add_post("/v2/repository/models/{model}/load", self.load)
        app.router.add_post("/v2/repository/models/{model}/unload", self.unload)
        for base in ("/v2/systemsharedmemory", "/v2/systemsharedmemory/region/{region}"):
            app.router.add_get(base + "/status", self.shm_status)
            app.router.add_post(base + "/unregister", self.shm_unregister)
        app.router.add_post("/v2/systemsharedmemory/region/{region}/register", self.shm_register)
        for base in ("/v2/cudasharedmemory", "/v2/cudasharedmemory/region/{region}"):
            app.router.add_get(base + "/status", self.cuda_shm)
            app.router.add_post(base + "/unregister", self.cuda_shm)
        app.router.add_post("/v2/cudasharedmemory/region/{region}/register", self.cuda_shm)

    @staticmethod
    def _names(request: web.Request) -> tuple[str, str]:
        return request.match_info.get("model", ""), request.match_info.get("version", "")

    async def live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if await self._backend.server_ready() else 400)

    async def readyz(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if await self._backend.server_ready() else 503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return json_response(http_codec.message_to_json(await self._backend.server_metadata()))

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = await self._backend.model_ready(*self._names(request))
        return web.Response(status=200 if ready else 400)

    async def model_metadata(self, request: web.Request) -> web.Response:
        reply = await self._backend.model_metadata(*self._names(request))
        return json_response(http_codec.message_to_json(reply))

    async def model_config(self, request: web.Request) -> web.Response:
        reply = await self._backend.model_config(*self._names(request))
        return json_response(http_codec.message_to_json(reply))

    async def statistics(self, request: web.Request) -> web.Response:
        reply = await self._backend.model_statistics(*self._names(request))
        return json_response(http_codec.message_to_json(reply, all_messages=True))

    async def infer(self, request: web.Request) -> web.Response:
        name, version = self._names(request)
        body = await request.read()
        parsed = build_infer_request(name, version, request.headers, body)
        reply = await self._backend.infer(parsed.request, None, parsed.traceparent)
        return _infer_body(
            http_codec.infer_response_to_http(
                reply,
                binary_default=parsed.binary_default,
                binary_by_output=parsed.binary_by_output,
            )
        )

    async def repository_index(self, request: web.Request) -> web.Response:
        doc = await _read_json(request, "repository index body")
        ready = doc.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidArgument("repository index: 'ready' must be true or false")
        reply = await self._backend.repository_index(ready)
        return json_response([http_codec.message_to_json(m) for m in reply.models])

    async def load(self, request: web.Request) -> web.Response:
        doc = await _read_json(request, "model load body")
        message = pb.RepositoryModelLoadRequest(model_name=request.match_info["model"])
        http_codec.repository_parameters_from_json(message.parameters, doc.get("parameters"))
        await self._backend.load(message)
        return web.Response(status=200)

    async def unload(self, request: web.Request) -> web.Response:
        doc = await _read_json(request, "model unload body")
        message = pb.RepositoryModelUnloadRequest(model_name=request.match_info["model"])
        http_codec.repository_parameters_from_json(message.parameters, doc.get("parameters"))
        await self._backend.unload(message)
        return web.Response(status=200)

    async def shm_status(self, request: web.Request) -> web.Response:
        regions = await self._backend.shm_status(request.match_info.get("region", ""))
        return json_response(http_codec.shm_status_to_json(regions))

    async def shm_register(self, request: web.Request) -> web.Response:
        doc = await _read_json(request, "shared-memory register body")
        name = request.match_info["region"]
        await self._backend.shm_register(http_codec.shm_register_from_json(name, doc))
        return web.Response(status=200)

    async def shm_unregister(self, request: web.Request) -> web.Response:
        await self._backend.shm_unregister(request.match_info.get("region", ""))
        return web.Response(status=200)

    async def cuda_shm(self, request: web.Request) -> web.Response:
        raise cuda_shm_refusal()


class _RuntimeRoutes:
    """Triton's logging and trace-setting routes over one process's ``RuntimeSettings``."""

    def __init__(self, runtime: RuntimeSettings) -> None:
        self._runtime = runtime

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v2/logging", self.logging)
        app.router.add_post("/v2/logging", self.logging)
        for path in ("/v2/trace/setting", "/v2/models/{model}/trace/setting"):
            app.router.add_get(path, self.trace)
            app.router.add_post(path, self.trace)

    async def logging(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response(self._runtime.log_settings())
        doc = await _read_json(request, "log settings body")
        return json_response(self._runtime.update_log_settings(doc))

    async def trace(self, request: web.Request) -> web.Response:
        model = request.match_info.get("model", "")
        if request.method == "GET":
            now = self._runtime.trace_settings(model)
        else:
            doc = await _read_json(request, "trace settings body")
            now = self._runtime.update_trace_settings(
                {key: _trace_values(key, value) for key, value in doc.items()}, model
            )
        # as Triton answers: trace_level a list, every other setting one string
        return json_response(
            {key: values if key == "trace_level" else values[0] for key, values in now.items()}
        )


def _trace_values(key: str, value: Any) -> list[str] | None:
    """A POSTed trace setting: a string, a list of strings, or null (clear it)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidArgument(f"trace setting {shown(key)} must be a string, a list of strings or null")


def _error_middleware() -> Any:
    @web.middleware
    async def errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except RunnerFleetError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = exc.text if exc.text and exc.status != 404 else exc.reason
            if exc.status == 404:
                reason = f"no route {request.method} {request.path}"
            if exc.status == 413:
                reason = f"request body too large: {exc.text or exc.reason}"
            return json_response({"error": reason}, exc.status)
        except Exception as exc:  # noqa: BLE001 - answer 500 with the reason, keep serving
            log.exception("HTTP %s %s failed", request.method, request.path)
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 500)

    return errors


_CONTROL_PATHS = ("/v2/repository/models/", "/v2/logging", "/v2/trace/")  # control scope


def _http_scope(path: str) -> str | None:
    """The scope a route needs, as protos.auth.required_scope says for the same rpc.

    Shared-memory routes need ``inference``: SystemSharedMemory* are inference rpcs there.
    """
    if path in OPEN_PATHS:
        return None
    if path.startswith(_CONTROL_PATHS) or path.endswith(("/stats", "/trace/setting")):
        return CONTROL
    return INFERENCE


def _certificate_names(request: web.Request) -> list[str]:
    """Common names of the verified client certificate (mTLS), if any."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    names = []
    for rdn in (cert or {}).get("subject", ()):
        names += [value for key, value in rdn if key == "commonName"]
    return names


def _auth_middleware(policy: AuthPolicy, on_reject: Callable[[str], None]) -> Any:
    """The gRPC side's rule over HTTP: a token or certificate with the route's scope."""

    @web.middleware
    async def auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        scope = _http_scope(request.path)
        if scope is None:
            return await handler(request)
        header = request.headers.get("Authorization")
        granted = policy.token_scopes([("authorization", header)] if header else []) or frozenset()
        for name in _certificate_names(request) if policy.mtls else ():
            granted = granted | policy.identities.get(name, frozenset())
        if not granted:
            on_reject("unauthenticated")
            response = error_response(Unauthenticated(_DENIED))
            response.headers["WWW-Authenticate"] = (
                'Bearer error="invalid_token"' if header else "Bearer"
            )
            return response
        if scope not in granted:
            on_reject("permission_denied")
            response = error_response(
                PermissionDenied(f"this credential lacks the {scope!r} scope for {request.path}")
            )
            response.headers["WWW-Authenticate"] = (
                f'Bearer error="insufficient_scope", scope="{scope}"'
            )
            return response
        return await handler(request)

    return auth


def server_ssl_context(
    cert: str | None, key: str | None, client_ca: str | None
) -> ssl.SSLContext | None:
    """TLS for HTTP from the gRPC side's files (client certificates required with a CA)."""
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class HttpServer:
    """One aiohttp server of the v2 routes (plus any extra routes) on the running loop."""

    def __init__(
        self,
        backend: V2Backend,
        *,
        max_body_bytes: int,
        policy: AuthPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_reject: Callable[[str], None] = lambda reason: None,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        middlewares = [_error_middleware()]
        if policy is not None and policy.enabled:
            middlewares.insert(0, _auth_middleware(policy, on_reject))
        self.app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
        _Routes(backend).add_to(self.app)
        if runtime is not None:
            _RuntimeRoutes(runtime).add_to(self.app)
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Bind ``host:port`` (0 = any free port) and serve; returns the bound port."""
        # handler_cancellation: a client that hangs up cancels its request, as gRPC does, so
        # the batcher drops it before it forms a batch
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl, reuse_port=False)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop accepting and close connections (requests in flight were drained before)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
