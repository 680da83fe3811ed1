"""Start, wait for and stop RunnerFleet processes in tests, without guessing ports or sleeping.

A process binds port 0 and writes ``--port-file``; its ``listening`` log line (read from its
stderr on a drain thread) says when the file is there. Readiness is gRPC health SERVING, read
with ``Health.Watch`` (the server pushes changes; nothing polls). This module never imports
``protos`` or ``tritonclient`` (tests/compat imports it too).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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
READY_LINE = "listening grpc="


@dataclasses.dataclass
class ProcessHandle:
    """A started process: its PID, ports and captured log."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    metrics_port: int
    port_file: str
    log_lines: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.log_lines)


def _drain(stream: object, lines: list[str], ready: threading.Event) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace")
        lines.append(line)
        if READY_LINE in line:
            ready.set()
    ready.set()  # EOF: the process exited (the caller checks)


def start_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 60.0,
    port_file: str | None = None,
) -> ProcessHandle:
    """Run ``argv`` (which must pass ``--port-file PORT_FILE``) until it reports its ports."""
    if port_file is None:
        fd, port_file = tempfile.mkstemp(prefix="rf-ports-", suffix=".json")
        os.close(fd)
        os.unlink(port_file)
    argv = [a.replace("{port_file}", port_file) for a in argv]
    proc_env = dict(os.environ if env is None else env)
    proc_env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=proc_env,
        cwd=str(REPO_ROOT),
    )
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(proc.stdout, lines, ready), daemon=True).start()
    if not ready.wait(timeout_s) or not os.path.exists(port_file):
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"{argv[:4]} did not report its ports within {timeout_s} s "
            f"(exit {proc.returncode}):\n{''.join(lines)[-4000:]}"
        )
    with open(port_file, encoding="utf-8") as f:
        ports = json.load(f)
    return ProcessHandle(
        proc, host, int(ports["grpc_port"]), int(ports["metrics_port"]), port_file, lines
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
    argv = [
        sys.executable,
        "-c",
        "from runnerfleet.cli import main; main()",
        "worker",
        "--models",
        tags,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--port-file",
        "{port_file}",
    ]
    flags.setdefault("device", "cpu")
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc_env = dict(os.environ if env is None else env)
    proc_env["RUNNERFLEET_HOME"] = str(store_home)
    return start_process(argv, env=proc_env, timeout_s=timeout_s)


def health_status(address: str, service: str = "", timeout_s: float = 5.0) -> str:
    """The current health status name (``SERVING``, ``NOT_SERVING``, ...)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_serving(address: str, timeout_s: float = 60.0, service: str = "") -> None:
    """Block until gRPC health reports SERVING (Health.Watch), or raise TimeoutError."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stream = stub.Watch(
            health_pb2.HealthCheckRequest(service=service),
            timeout=timeout_s,
            wait_for_ready=True,
        )
        try:
            for reply in stream:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as exc:
            raise TimeoutError(
                f"{address} did not report SERVING within {timeout_s} s, or stopped first "
                f"(check the process log): {exc.code().name} {exc.details()}"
            ) from exc
        finally:
            stream.cancel()
    raise TimeoutError(f"{address} health stream ended before SERVING")


def stop(handle: ProcessHandle, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    """Send ``sig`` to the process by PID and wait for it; SIGKILL after ``timeout_s``."""
    if handle.proc.poll() is None:
        os.kill(handle.pid, sig)
        try:
            handle.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(handle.pid, signal.SIGKILL)
            handle.proc.wait()
    if os.path.exists(handle.port_file):
        os.unlink(handle.port_file)
    return int(handle.proc.returncode)
