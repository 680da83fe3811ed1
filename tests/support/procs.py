"""Start, wait for and stop RunnerFleet processes in tests, through ``runnerfleet.supervisor``.

A process binds port 0 and writes ``--port-file``; its ``listening`` log line says when the file
is there. Readiness is gRPC health SERVING (``Health.Watch``; nothing polls). Neither this module
nor the supervisor imports ``protos`` or ``tritonclient`` (tests/compat imports it too).
"""

from __future__ import annotations

import os
import pathlib
import signal
from collections.abc import Sequence

from runnerfleet.supervisor import Child, Supervisor, cli_command, health_status, wait_serving

__all__ = [
    "ProcessHandle",
    "start_process",
    "start_worker",
    "wait_serving",
    "health_status",
    "stop",
    "REPO_ROOT",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

ProcessHandle = Child
_SUPERVISOR = Supervisor(cwd=REPO_ROOT)


def start_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 60.0,
    port_file: str | None = None,
) -> ProcessHandle:
    """Run ``argv`` (``{port_file}`` marks where the port file goes) until it reports its ports."""
    name = argv[3] if len(argv) > 3 else pathlib.Path(argv[0]).name
    return _SUPERVISOR.start(
        name, argv, host=host, timeout_s=timeout_s, env=env, port_file=port_file
    )


def start_worker(
    models: str | Sequence[str],
    store_home: str | os.PathLike[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    **flags: object,
) -> ProcessHandle:
    """Start ``runnerfleet worker`` on 127.0.0.1, port 0; flags as ``max_batch_size=8``."""
    tags = models if isinstance(models, str) else ",".join(models)
    argv = cli_command(
        "worker", "--models", tags, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
        "--port-file", "{port_file}",
    )  # fmt: skip
    flags.setdefault("device", "cpu")
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc_env = dict(os.environ if env is None else env)
    proc_env["RUNNERFLEET_HOME"] = str(store_home)
    return start_process(argv, env=proc_env, timeout_s=timeout_s)


def stop(handle: ProcessHandle, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    """Send ``sig`` to the process by PID and wait for it; SIGKILL after ``timeout_s``."""
    return _SUPERVISOR.stop(handle, sig, grace_s=timeout_s)
