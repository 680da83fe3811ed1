"""`runnerfleet cluster up`: a gateway and N workers as local processes; Ctrl-C stops them all.

Supervised: a worker or the gateway that crashes is restarted on its ports with exponential
back-off (`runnerfleet.restart_policy`); each restart is logged (`restarting NAME ... (restart
N)`). A crash loop stops the restarts: a crash-looping gateway stops the cluster with exit
status 1, a crash-looping worker is reported and the others serve on.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

__all__ = ["cluster", "ensure_demo_models", "print_summary", "DEMO_MODELS"]

DEMO_MODELS = ("iris_clf", "digits_mlp", "echo")


def ensure_demo_models() -> list[str]:
    """Tags of the demo models, saving them into the store first when absent."""
    import runnerfleet
    from protos.errors import NotFound

    try:
        return [str(runnerfleet.models.get(f"{name}:latest").tag) for name in DEMO_MODELS]
    except NotFound:
        from runnerfleet import demo_models

        click.echo(
            "seeding the store with the demo models (iris_clf, digits_mlp, echo)...", err=True
        )
        return [str(tag) for tag in demo_models.seed_demo()]


def print_summary(local: Any) -> None:
    """Say where every process listens."""
    gateway = local.gateway
    click.echo("RunnerFleet cluster is up:")
    for child in [gateway, *local.workers]:
        click.echo(
            f"  {child.name:<10} grpc {child.address:<22} "
            f"metrics http://{child.host}:{child.metrics_port}/metrics  pid {child.proc.pid}"
        )
    click.echo(f"Send requests to {gateway.address} (Triton gRPC API). Ctrl-C stops everything.")


@click.group()
def cluster() -> None:
    """Run a local cluster (gateway + workers) on this machine."""


@cluster.command("up")
@click.option(
    "--workers", "n_workers", type=int, default=2, show_default=True, help="Worker processes."
)
@click.option("--models", default=None, help="TAG[,TAG...] to serve (default: the demo models).")
@click.option("--service", default=None, help="module:attr of a Service: workers host its runners.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface every process binds."
)
@click.option(
    "--port", type=int, default=8001, show_default=True, help="Gateway gRPC port (0 = any)."
)
@click.option(
    "--metrics-port", type=int, default=8002, show_default=True, help="Gateway /metrics port."
)
@click.option("--device", default="cpu", show_default=True, help="Worker device: cpu or cuda:N.")
@click.option(
    "--timeout-s", type=float, default=300.0, show_default=True, help="Longest start-up wait."
)
@click.option("--quiet", is_flag=True, help="Do not echo the processes' logs.")
@click.option(
    "--restart/--no-restart", default=True, show_default=True,
    help="Restart crashed processes (exponential back-off, crash-loop detection).",
)  # fmt: skip
@click.option(
    "--max-restarts", type=int, default=5, show_default=True,
    help="Restarts within --restart-window-s that count as a crash loop.",
)  # fmt: skip
@click.option("--restart-window-s", type=float, default=60.0, show_default=True)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log format of the gateway and workers (json: one object per line, with ids).",
)
def up(
    n_workers: int,
    models: str | None,
    service: str | None,
    host: str,
    port: int,
    metrics_port: int,
    device: str,
    timeout_s: float,
    quiet: bool,
    restart: bool,
    max_restarts: int,
    restart_window_s: float,
    log_format: str,
) -> None:
    """Start the gateway and N workers, wait until all are SERVING, stop all on Ctrl-C/SIGTERM."""
    from runnerfleet.local_cluster import LocalCluster
    from runnerfleet.restart_policy import RestartPolicy

    if n_workers < 1:
        raise click.UsageError("--workers must be at least 1")
    if models:
        tags = [t.strip() for t in models.split(",") if t.strip()]
    else:
        tags = [] if service else ensure_demo_models()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    gave_up: list[Any] = []

    def on_give_up(child: Any) -> None:
        click.echo(f"error: {child.name} is crash-looping; it is not restarted again", err=True)
        if child.name == "gateway":
            gave_up.append(child)
            stop.set()

    def on_restart(child: Any) -> None:
        click.echo(f"{child.name} restarted (pid {child.pid}, restart {child.restarts})", err=True)

    policy = RestartPolicy(max_restarts=max_restarts, window_s=restart_window_s)
    local = LocalCluster(
        workers=n_workers, models=tags, host=host, port=port, metrics_port=metrics_port,
        device=device, service=service,
        worker_flags={"log_format": log_format}, gateway_flags={"log_format": log_format},
        echo=None if quiet else (lambda line: click.echo(line, err=True)),
        restart=policy if restart else None, on_restart=on_restart, on_give_up=on_give_up,
    )  # fmt: skip
    try:
        local.start(timeout_s=timeout_s)
    except (RuntimeError, TimeoutError) as exc:
        click.echo(f"cluster failed to start: {exc}", err=True)
        sys.exit(1)
    exit_code = 0
    try:
        print_summary(local)
        if not restart:
            for child in local.running():
                threading.Thread(target=_watch_child, args=(child, stop), daemon=True).start()
        stop.wait()
        assert local.gateway is not None
        if gave_up or local.gateway.proc.poll() is not None:
            exit_code = 1
            click.echo(
                f"stopping the cluster: the gateway exited ({local.gateway.proc.returncode})",
                err=True,
            )
        else:
            click.echo("stopping the cluster: gateway first, then the workers drain...", err=True)
    finally:
        restarted = {
            c.name: c.restarts for c in [*local.workers, local.gateway] if c and c.restarts
        }
        if restarted:
            click.echo(f"restarts: {restarted}", err=True)
        local.stop()
        left = local.running()
        click.echo(
            "all stopped" if not left else f"still running: {[c.proc.pid for c in left]}", err=True
        )
    sys.exit(exit_code)


def _watch_child(child: Any, stop: threading.Event) -> None:
    """The gateway exiting stops the cluster; a worker exiting is reported (others serve on)."""
    code = child.proc.wait()
    if stop.is_set():
        return
    if child.name == "gateway":
        stop.set()
    else:
        click.echo(f"warning: {child.name} (pid {child.proc.pid}) exited with {code}", err=True)
