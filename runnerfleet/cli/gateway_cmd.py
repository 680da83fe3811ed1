"""`runnerfleet gateway`: route inference requests to runner workers."""

from __future__ import annotations

from typing import Any

import click

from runnerfleet.cli.loop_flag import event_loop_option
from runnerfleet.cli.trust_flags import trust_options

__all__ = ["gateway"]


@click.command()
@event_loop_option
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1; 0.0.0.0 = all).")
@click.option("--port", type=int, default=None, help="gRPC port (default 8001; 0 = any free port).")
@click.option(
    "--metrics-port", type=int, default=None, help="/metrics HTTP port (default 8002; 0 = any)."
)
@click.option(
    "--http-port",
    type=int,
    default=None,
    help="HTTP/REST v2 port (default 8000, any free port when --port is 0; 0 = any; -1 = off).",
)
@click.option("--port-file", default=None, help="Write the bound ports and pid here as JSON.")
@click.option("--workers", default=None, help="Static workers: HOST:PORT[,HOST:PORT...].")
@click.option(
    "--workers-dns", default=None, help="NAME:PORT re-resolved periodically (replicas join/leave)."
)
@click.option(
    "--dns-refresh-s", type=float, default=None, help="Seconds between DNS re-resolutions (2)."
)
@click.option("--service", default=None, help="module:attr of a runnerfleet.Service to expose.")
@click.option(
    "--max-inflight", type=int, default=None, help="Requests in flight before RESOURCE_EXHAUSTED."
)
@click.option("--max-inflight-per-worker", type=int, default=None, help="In-flight cap per worker.")
@click.option(
    "--max-message-bytes", type=int, default=None, help="Max gRPC message size (256 MiB)."
)
@click.option(
    "--forward-shm-min-bytes",
    type=int,
    default=None,
    help="Requests this big reach workers on this host through shared memory (1 MiB; 0 = off).",
)
@click.option(
    "--forward-local-link/--no-forward-local-link",
    default=None,
    help="Forward to workers on this host over the Unix socket they offer (default on).",
)
@trust_options
@click.option("--worker-tls-ca", default=None, help="CA (PEM) to verify workers: TLS to workers.")
@click.option("--worker-tls-cert", default=None, help="Client certificate presented to workers.")
@click.option("--worker-tls-key", default=None, help="Key of --worker-tls-cert.")
@click.option(
    "--worker-tls-server-name", default=None, help="Name worker certificates carry (pod IPs)."
)
@click.option(
    "--cluster-token-file", default=None, help="Inference-scope token presented to workers."
)
@click.option(
    "--cluster-control-token-file", default=None, help="Control-scope token presented to workers."
)
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or JSON objects (with request_id and trace_id).",
)
def gateway(log_level: str, log_format: str, **flags: Any) -> None:
    """Serve the Triton-compatible gRPC API and forward requests to workers."""
    from protos.logformat import configure_logging

    configure_logging(log_level, log_format)
    from api_gateway.app import run
    from api_gateway.settings import GatewaySettings
    from protos.errors import RunnerFleetError

    try:
        settings = GatewaySettings.load(flags)
    except RunnerFleetError as exc:
        raise click.UsageError(exc.message) from None
    try:
        run(settings)
    except RunnerFleetError as exc:  # bad token file, TLS files, --service: say so, no traceback
        raise click.ClickException(exc.message) from None
