"""Settings fields both processes share for cluster trust: TLS, tokens, scopes, /metrics access.

A dataclass mixin (grpc-free) that `WorkerSettings` and `GatewaySettings` inherit, so both
read the same flags and `RUNNERFLEET_*` variables (docs/SECURITY.md, "Cluster traffic").
Token values and file contents never appear in a repr.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from protos.errors import InvalidArgument

__all__ = ["TrustSettings", "TRUST_PARSERS", "parse_names"]

# the certificate common names `runnerfleet certs` issues, and the scopes they get by default
DEFAULT_INFERENCE_IDENTITIES = ("runnerfleet-client", "runnerfleet-gateway")
DEFAULT_CONTROL_IDENTITIES = ("runnerfleet-admin", "runnerfleet-gateway")


@dataclasses.dataclass(frozen=True)
class TrustSettings:
    """Server-side TLS and credentials, plus where and how `/metrics` is served."""

    tls_cert: str | None = None  # server certificate (PEM): serve gRPC over TLS
    tls_key: str | None = None
    tls_client_ca: str | None = None  # mTLS: client certificates must chain to this CA
    auth_token_file: str | None = None  # bearer token granting the inference scope
    auth_token: str | None = dataclasses.field(default=None, repr=False)
    control_token_file: str | None = None  # bearer token granting the control scope
    control_token: str | None = dataclasses.field(default=None, repr=False)
    inference_identities: tuple[str, ...] = DEFAULT_INFERENCE_IDENTITIES  # client cert CNs
    control_identities: tuple[str, ...] = DEFAULT_CONTROL_IDENTITIES
    metrics_host: str = ""  # interface for /metrics ("" = the gRPC --host)
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    metrics_tls_client_ca: str | None = None  # scrapers must present a certificate from it
    metrics_basic_auth_file: str | None = None  # one `user:password` line

    def check_trust(self) -> None:
        """Refuse half-configured TLS (called by each process's __post_init__)."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidArgument("TLS needs both --tls-cert and --tls-key")
        if self.tls_client_ca and not self.tls_cert:
            raise InvalidArgument("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        if bool(self.metrics_tls_cert) != bool(self.metrics_tls_key):
            raise InvalidArgument("metrics TLS needs both --metrics-tls-cert and --metrics-tls-key")
        if self.metrics_tls_client_ca and not self.metrics_tls_cert:
            raise InvalidArgument("--metrics-tls-client-ca needs --metrics-tls-cert and key")

    @property
    def auth_configured(self) -> bool:
        """Whether the gRPC server requires a credential (a token or client certificates)."""
        return bool(
            self.auth_token_file
            or self.auth_token
            or self.control_token_file
            or self.control_token
            or self.tls_client_ca
        )


def parse_names(raw: Any) -> tuple[str, ...]:
    """`"a, b"` (or a list) -> `("a", "b")`."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(item.strip() for item in items if item.strip())


TRUST_PARSERS = {"inference_identities": parse_names, "control_identities": parse_names}
