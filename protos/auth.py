"""Who may call what, for both processes: scopes, bearer tokens, client certificates, TLS files.

One module for the gateway and the workers (a server interceptor, TLS credentials both ways,
the call metadata a client presents), so both enforce the same rule:

- grpc health is open (orchestrators probe without credentials);
- every other rpc needs a credential: a bearer token (`authorization: Bearer <token>`) or a
  client certificate verified by the server's client CA (mTLS) whose common name is listed
  for a scope; server reflection needs any valid credential;
- a credential grants scopes: `inference` (infer, metadata, config, readiness, index, the
  internal ForwardBatch and DescribeModels) or `control` (RepositoryModelLoad/Unload,
  ModelStatistics, the internal Drain). Each scope has its own token and its own certificate
  identities; one never implies the other.
- a missing or wrong credential is UNAUTHENTICATED; a valid one without the rpc's scope is
  PERMISSION_DENIED. Tokens are compared in constant time and never logged or echoed.

Without any token and without a client CA the server is open (a loopback dev setup); the
processes warn when they bind another interface that way.
"""

from __future__ import annotations

import dataclasses
import hmac
import inspect
import ipaddress
import pathlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from protos.errors import InvalidArgument
from protos.trust_settings import TrustSettings

__all__ = [
    "INFERENCE",
    "CONTROL",
    "SCOPES",
    "CONTROL_METHODS",
    "OPEN_METHOD_PREFIXES",
    "AuthPolicy",
    "accepted_secrets",
    "ScopedAuthInterceptor",
    "bearer_metadata",
    "channel_credentials",
    "is_loopback",
    "load_secret",
    "policy_from_settings",
    "read_file",
    "required_scope",
    "server_credentials",
]

INFERENCE = "inference"
CONTROL = "control"
SCOPES = (INFERENCE, CONTROL)
ANY_SCOPE = "any"  # reflection: any valid credential

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
_REFLECTION_PREFIXES = ("/grpc.reflection.",)
CONTROL_METHODS = frozenset(
    {
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
        "/inference.GRPCInferenceService/ModelStatistics",
        "/inference.GRPCInferenceService/TraceSetting",
        "/inference.GRPCInferenceService/LogSettings",
        "/runnerfleet.internal.v1.WorkerInternal/Drain",
    }
)
_UNAUTHENTICATED = (
    "missing or wrong credential: send metadata `authorization: Bearer <token>` "
    "(bearer token) or a client certificate the server trusts"
)


def required_scope(method: str) -> str | None:
    """The scope an rpc path needs: None (open), "any" (reflection), control or inference."""
    if method.startswith(OPEN_METHOD_PREFIXES):
        return None
    if method.startswith(_REFLECTION_PREFIXES):
        return ANY_SCOPE
    return CONTROL if method in CONTROL_METHODS else INFERENCE


@dataclasses.dataclass(frozen=True)
class AuthPolicy:
    """The credentials a server accepts: tokens and certificate common names, each with scopes."""

    tokens: tuple[tuple[bytes, frozenset[str]], ...] = ()
    identities: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    mtls: bool = False  # a client CA is configured: peers may prove identity with a certificate

    def __repr__(self) -> str:  # never show tokens
        return f"AuthPolicy(tokens={len(self.tokens)}, mtls={self.mtls})"

    @property
    def enabled(self) -> bool:
        """Whether any credential is required (else the server is open)."""
        return bool(self.tokens) or self.mtls

    def token_scopes(self, metadata: Iterable[tuple[str, Any]] | None) -> frozenset[str] | None:
        """Scopes of the bearer token in `metadata`: None when absent (or when this server
        takes no tokens, so a certificate decides); empty when wrong."""
        if not self.tokens:
            return None
        for key, value in metadata or ():
            if key != "authorization":
                continue
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, credential = text.partition(" ")
            if scheme.lower() != "bearer":
                return frozenset()
            given = credential.strip().encode()
            granted: frozenset[str] = frozenset()
            for token, scopes in self.tokens:  # compare with every token: constant time
                if hmac.compare_digest(given, token):
                    granted = granted | scopes
            return granted
        return None

    def certificate_scopes(self, auth_context: Mapping[str, Sequence[bytes]]) -> frozenset[str]:
        """Scopes of the verified client certificate's common name (empty without one)."""
        if not self.mtls:
            return frozenset()
        granted: frozenset[str] = frozenset()
        for raw in auth_context.get("x509_common_name", ()):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            granted = granted | self.identities.get(name, frozenset())
        return granted


def policy_from_settings(settings: TrustSettings) -> AuthPolicy:
    """Read the token files once and build the policy (tokens never leave this object).

    A token file may hold several tokens, one a line: all are accepted (rotation overlap).
    """
    inference = accepted_secrets(settings.auth_token_file, settings.auth_token, "auth token")
    control = accepted_secrets(settings.control_token_file, settings.control_token, "control token")
    if set(inference) & set(control):
        raise InvalidArgument("the inference and control tokens must differ (separate scopes)")
    tokens = tuple(
        (token.encode(), frozenset({scope}))
        for scope, accepted in ((INFERENCE, inference), (CONTROL, control))
        for token in accepted
    )
    identities: dict[str, frozenset[str]] = {}
    for scope, names in (
        (INFERENCE, settings.inference_identities),
        (CONTROL, settings.control_identities),
    ):
        for name in names:
            identities[name] = identities.get(name, frozenset()) | {scope}
    return AuthPolicy(tokens=tokens, identities=identities, mtls=bool(settings.tls_client_ca))


def accepted_secrets(path: str | None, value: str | None, what: str) -> tuple[str, ...]:
    """Every token a server accepts: the file's non-empty lines, else the literal value."""
    if path:
        try:
            lines = pathlib.Path(path).read_text().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the {what} file: {exc.strerror}") from None
        tokens = tuple(line.strip() for line in lines if line.strip())
        if not tokens:
            raise InvalidArgument(f"the {what} file {path} is empty")
        return tokens
    return (value,) if value else ()


def load_secret(path: str | None, value: str | None, what: str) -> str | None:
    """The token a client presents: the file's first non-empty line, else the value, else None."""
    accepted = accepted_secrets(path, value, what)
    return accepted[0] if accepted else None


def read_file(path: str, what: str) -> bytes:
    """The bytes of a PEM file, or InvalidArgument naming what could not be read."""
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} file {path}: {exc.strerror}") from None


def server_credentials(
    cert: str | None, key: str | None, client_ca: str | None
) -> grpc.ServerCredentials | None:
    """TLS server credentials (client certificates required when `client_ca`), or None."""
    if not cert or not key:
        return None
    pair = (read_file(key, "TLS key"), read_file(cert, "TLS certificate"))
    ca = read_file(client_ca, "client CA") if client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=bool(ca))


def channel_credentials(
    ca: str, cert: str | None = None, key: str | None = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials that verify the server against `ca`; mTLS with cert and key."""
    root = read_file(ca, "CA")
    if bool(cert) != bool(key):
        raise InvalidArgument("a client certificate needs both its certificate and key files")
    if cert and key:
        return grpc.ssl_channel_credentials(
            root, read_file(key, "client key"), read_file(cert, "client certificate")
        )
    return grpc.ssl_channel_credentials(root)


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """Call metadata presenting `token` (None: present nothing)."""
    return (("authorization", f"Bearer {token}"),) if token else None


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class ScopedAuthInterceptor(grpc.aio.ServerInterceptor):
    """Enforces an AuthPolicy on every rpc but health (see the module docstring).

    A call with a bearer token is decided here, before its request is read. A call without
    one is decided by its client certificate when mTLS is on (the certificate is only visible
    from the servicer context, so the handler is wrapped), else refused at once.
    `on_reject(code_name)` counts refusals ("unauthenticated" / "permission_denied").
    """

    def __init__(self, policy: AuthPolicy, on_reject: Callable[[str], None] = lambda c: None):
        self._policy = policy
        self._on_reject = on_reject

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        scope = required_scope(method)
        if scope is None:
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        scopes = self._policy.token_scopes(handler_call_details.invocation_metadata)
        if scopes is None and self._policy.mtls:
            return _wrap(handler, lambda context: self._check_certificate(context, method, scope))
        verdict = self._verdict(scopes or frozenset(), method, scope)
        if verdict is None:
            return handler
        self._on_reject(verdict[0].name.lower())
        return _refusing(handler, *verdict)

    def _verdict(
        self, scopes: frozenset[str], method: str, scope: str
    ) -> tuple[grpc.StatusCode, str] | None:
        if not scopes:
            return grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED
        if scope == ANY_SCOPE or scope in scopes:
            return None
        have = ", ".join(sorted(scopes))
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"{method.rsplit('/', 1)[-1]} needs the {scope} scope; this credential has: {have}",
        )

    async def _check_certificate(
        self, context: grpc.aio.ServicerContext, method: str, scope: str
    ) -> None:
        scopes = self._policy.certificate_scopes(context.auth_context())
        verdict = self._verdict(scopes, method, scope)
        if verdict is not None:
            self._on_reject(verdict[0].name.lower())
            await context.abort(*verdict)


Check = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def _guard(behavior: Callable[..., Any], check: Check) -> Callable[..., Any]:
    """`behavior` run only after `check(context)` passed (it aborts the call otherwise)."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for item in behavior(request, context):
                yield item

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _wrap(handler: grpc.RpcMethodHandler | None, check: Check) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None
    attr, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    return factory(  # type: ignore[operator]
        _guard(getattr(handler, attr), check),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _refusing(
    handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that refuses without reading the request."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    kind = (False, False) if handler is None else (
        handler.request_streaming, handler.response_streaming
    )  # fmt: skip
    return _FACTORIES[kind][1](refuse)  # type: ignore[operator]
