"""`runnerfleet worker`: serve models from the store on one device, with adaptive batching."""

from __future__ import annotations

import sys

import click

from runnerfleet.cli.loop_flag import event_loop_option
from runnerfleet.cli.trust_flags import trust_options

__all__ = ["worker"]


@click.command("worker")
@click.option("--models", help="Model tags to serve: TAG[,TAG...] (env RUNNERFLEET_MODELS).")
@click.option(
    "--service", help="module:attr of a Service whose runners to host (as the gateway's)."
)
@click.option("--runners", help="Only these runners of --service: NAME[,NAME...] (default all).")
@click.option("--device", help="cpu or cuda:N (N among the visible GPUs). Default cpu.")
@click.option("--cpus", help="CPU affinity, e.g. 0-3 or 0,2.")
@click.option(
    "--threads",
    type=int,
    help="Torch and BLAS/OpenMP threads (default: the usable cores; 0 = the libraries' own).",
)
@click.option(
    "--omp-wait-policy",
    type=click.Choice(["PASSIVE", "ACTIVE", "default"]),
    help="OpenMP idle threads sleep (PASSIVE, default) or spin; 'default' leaves it alone.",
)
@event_loop_option
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 = all).")
@click.option("--port", type=int, help="gRPC port (0 = any free port; default 8101).")
@click.option("--metrics-port", type=int, help="Prometheus /metrics port (0 = any; default 8102).")
@click.option(
    "--http-port",
    type=int,
    help="HTTP/REST v2 port (0 = any; -1 = off; default 8100, any free port when --port is 0).",
)
@click.option(
    "--port-file", help="Write {grpc_port, metrics_port, http_port, pid} as JSON here once bound."
)
@click.option("--max-batch-size", type=int, help="Most rows per batch (1 disables batching).")
@click.option("--max-latency-ms", type=float, help="End-to-end latency budget per request.")
@click.option("--max-queue-size", type=int, help="Requests waiting per method before refusing.")
@click.option("--max-inflight-batches", type=int, help="Batches running at once per method.")
@click.option("--max-message-bytes", type=int, help="gRPC message limit both ways (256 MiB).")
@click.option("--worker-id", help="Stable worker name (default host:port).")
@click.option("--drain-timeout-s", type=float, help="Longest drain on SIGTERM (default 30).")
@trust_options
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or JSON objects (with request_id and trace_id).",
)
def worker(log_level: str, log_format: str, **flags: object) -> None:
    """Load models from the store, warm them up, serve them over gRPC until SIGTERM."""
    from protos.logformat import configure_logging

    configure_logging(log_level, log_format)
    from protos.errors import RunnerFleetError
    from runner_worker.device import pin_process
    from runner_worker.settings import load_settings

    try:
        settings = load_settings(flags)
        if not settings.models and not settings.service:
            raise click.UsageError("--models or --service (or RUNNERFLEET_MODELS) is required")
        if settings.runners and not settings.service:
            raise click.UsageError("--runners needs --service")
        pin_process(settings)  # before numpy/torch load: they read these variables at import
    except RunnerFleetError as exc:
        raise click.UsageError(exc.message) from None

    from runner_worker.app import run

    try:
        status = run(settings)
    except RunnerFleetError as exc:  # unreadable token or TLS files: say so, no traceback
        raise click.ClickException(exc.message) from None
    sys.exit(status)
