"""A gateway and N workers as local child processes: start, wait until SERVING, stop them all.

Used by `runnerfleet cluster up`, the demo and the gateway benchmark. Children bind their
ports (workers on port 0) and report them with `--port-file`; readiness is gRPC health
SERVING (a Watch stream, no polling). Children run in their own session so a terminal's
Ctrl-C reaches only this supervisor, which then stops them in order: the gateway first (no new
traffic), then the workers (SIGTERM: they drain). They also get SIGTERM from the kernel if the
supervisor dies (PR_SET_PDEATHSIG), so nothing is left running.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["ChildProcess", "LocalCluster", "wait_serving"]

_READY_LINE = "listening grpc="
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclasses.dataclass
class ChildProcess:
    """One started child: role, process, bound ports."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    grpc_port: int
    metrics_port: int

    @property
    def address(self) -> str:
        """host:port of its gRPC server."""
        return f"{self.host}:{self.grpc_port}"


def wait_serving(address: str, timeout_s: float) -> None:
    """Block until `address` reports gRPC health SERVING (Watch stream), else TimeoutError."""
    with grpc.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout_s, wait_for_ready=True
        )
        try:
            for reply in stream:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as exc:
            raise TimeoutError(
                f"{address} not SERVING within {timeout_s:.0f} s ({exc.code().name})"
            ) from None
        finally:
            stream.cancel()
    raise TimeoutError(f"{address} closed its health stream before SERVING")


class LocalCluster:
    """Starts and stops one gateway and `workers` worker processes on this machine."""

    def __init__(
        self,
        *,
        workers: int,
        models: Sequence[str],
        host: str = "127.0.0.1",
        port: int = 8001,
        metrics_port: int = 8002,
        device: str = "cpu",
        worker_flags: dict[str, object] | None = None,
        gateway_flags: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a cluster needs at least one worker")
        self.host, self.port, self.metrics_port = host, port, metrics_port
        self.n_workers, self.models, self.device = workers, list(models), device
        self.worker_flags = dict(worker_flags or {})
        self.gateway_flags = dict(gateway_flags or {})
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.echo = echo
        self.workers: list[ChildProcess] = []
        self.gateway: ChildProcess | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="rf-cluster-")
        self._lock = threading.Lock()

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the workers, wait until all are SERVING, then the gateway; stop all on failure."""
        deadline = time.monotonic() + timeout_s
        try:
            for index in range(self.n_workers):
                argv = ["worker", "--models", ",".join(self.models), "--device", self.device]
                argv += ["--port", "0", "--metrics-port", "0", *_flags(self.worker_flags)]
                self.workers.append(self._spawn(f"worker-{index}", argv, deadline))
            for worker in self.workers:
                wait_serving(worker.address, max(deadline - time.monotonic(), 1.0))
            argv = ["gateway", "--workers", ",".join(w.address for w in self.workers)]
            argv += [
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                *_flags(self.gateway_flags),
            ]
            self.gateway = self._spawn("gateway", argv, deadline)
            wait_serving(self.gateway.address, max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str], deadline: float) -> ChildProcess:
        port_file = pathlib.Path(self._tmp.name) / f"{name}.json"
        command = [sys.executable, "-c", "from runnerfleet.cli import main; main()", *argv]
        command += ["--host", self.host, "--port-file", str(port_file)]
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        child = ChildProcess(name, proc, self.host, 0, 0)
        ready = threading.Event()
        threading.Thread(
            target=self._pump, args=(name, proc, ready), daemon=True, name=f"log-{name}"
        ).start()
        if not ready.wait(max(deadline - time.monotonic(), 0.1)) or not port_file.exists():
            raise RuntimeError(f"{name} did not start (exit code {proc.poll()}); see its log above")
        ports = json.loads(port_file.read_text())
        child.grpc_port, child.metrics_port = int(ports["grpc_port"]), int(ports["metrics_port"])
        return child

    def _pump(self, name: str, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if _READY_LINE in line:
                ready.set()
            if self.echo is not None:
                self.echo(f"[{name}] {line}")
        ready.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the gateway, then the workers (they drain); SIGKILL what outlives `timeout_s`."""
        with self._lock:
            if self.gateway is not None:
                _terminate([self.gateway], timeout_s)
            _terminate(self.workers, timeout_s)
        self._tmp.cleanup()

    def running(self) -> list[ChildProcess]:
        """Children that have not exited."""
        children = [*self.workers, *([self.gateway] if self.gateway else [])]
        return [c for c in children if c.proc.poll() is None]


def _flags(flags: dict[str, object]) -> list[str]:
    argv: list[str] = []
    for key, value in flags.items():
        if value is None or value is False:
            continue
        argv.append(f"--{key.replace('_', '-')}")
        if value is not True:
            argv.append(str(value))
    return argv


def _terminate(children: Sequence[ChildProcess], timeout_s: float) -> None:
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
