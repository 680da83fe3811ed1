"""The cluster-trust flags `runnerfleet worker` and `runnerfleet gateway` share.

Each flag is a `TrustSettings` field (env `RUNNERFLEET_<FIELD>`); docs/SECURITY.md,
"Cluster traffic", explains them. Tokens are taken from files only on the command line
(a literal token in argv would show in `ps`); the env may carry the literal value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["trust_options"]

_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--tls-cert", "Server certificate (PEM): serve gRPC over TLS."),
    ("--tls-key", "Server private key (PEM)."),
    ("--tls-client-ca", "CA (PEM) client certificates must chain to (mTLS)."),
    ("--auth-token-file", "File with the bearer token that grants the inference scope."),
    ("--control-token-file", "File with the bearer token that grants the control scope."),
    ("--inference-identities", "Client certificate CNs granted inference (comma list)."),
    ("--control-identities", "Client certificate CNs granted control (comma list)."),
    ("--metrics-host", "Interface for /metrics (default: --host)."),
    ("--metrics-tls-cert", "Serve /metrics over HTTPS with this certificate (PEM)."),
    ("--metrics-tls-key", "Private key for --metrics-tls-cert."),
    ("--metrics-tls-client-ca", "Scrapers must present a certificate from this CA."),
    ("--metrics-basic-auth-file", "File with one `user:password` line: basic auth on /metrics."),
)


def trust_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared TLS / token / metrics-access options to a click command."""
    for flag, help_text in reversed(_OPTIONS):
        command = click.option(flag, default=None, help=help_text)(command)
    return command
