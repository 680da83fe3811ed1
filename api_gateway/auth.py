"""The gateway's side of cluster trust, over the shared rule in `protos.auth`.

Inbound (clients): the same scoped interceptor and TLS credentials the workers use.
Outbound (workers): the channel credentials (TLS verified against `worker_tls_ca`, a client
certificate for mTLS) and the call metadata per scope (the inference token on forwards and
DescribeModels, the control token on load/unload/statistics). Tokens are read once at start,
kept out of reprs and logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grpc

from api_gateway.settings import GatewaySettings
from protos.auth import (
    AuthPolicy,
    ScopedAuthInterceptor,
    bearer_metadata,
    channel_credentials,
    load_secret,
    policy_from_settings,
)
from protos.auth import server_credentials as _server_credentials

__all__ = ["WorkerCredentials", "auth_interceptor", "server_credentials", "worker_credentials"]

Metadata = tuple[tuple[str, str], ...] | None


def auth_interceptor(
    settings: GatewaySettings, on_reject: Callable[[str], None]
) -> tuple[AuthPolicy, ScopedAuthInterceptor | None]:
    """The client-facing policy, and its interceptor when any credential is configured."""
    policy = policy_from_settings(settings)
    return policy, ScopedAuthInterceptor(policy, on_reject) if policy.enabled else None


def server_credentials(settings: GatewaySettings) -> grpc.ServerCredentials | None:
    """TLS credentials for the client-facing port (mTLS with a client CA), or None."""
    return _server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)


@dataclasses.dataclass(frozen=True)
class WorkerCredentials:
    """What the gateway presents to every worker."""

    channel: grpc.ChannelCredentials | None = None  # None = plaintext
    server_name: str | None = None  # TLS name override (workers addressed by pod IP)
    inference: Metadata = dataclasses.field(default=None, repr=False)
    control: Metadata = dataclasses.field(default=None, repr=False)


def worker_credentials(settings: GatewaySettings) -> WorkerCredentials:
    """Read the worker-side CA, client certificate and cluster tokens once."""
    channel = None
    if settings.worker_tls_ca:
        channel = channel_credentials(
            settings.worker_tls_ca, settings.worker_tls_cert, settings.worker_tls_key
        )
    inference = load_secret(settings.cluster_token_file, settings.cluster_token, "cluster token")
    control = load_secret(
        settings.cluster_control_token_file, settings.cluster_control_token, "cluster control token"
    )
    return WorkerCredentials(
        channel=channel,
        server_name=settings.worker_tls_server_name,
        inference=bearer_metadata(inference),
        control=bearer_metadata(control),
    )
