"""The one process supervisor: start a RunnerFleet process, learn its ports, wait, stop by PID.

Used by ``runnerfleet cluster up`` (``LocalCluster``), the tests (``tests/support``) and the
benchmark (``bench/procs.py``). A child binds port 0 and writes ``--port-file`` (JSON with
``grpc_port``, ``metrics_port``, ``pid``), then logs ``listening grpc=...``; a reader thread
sees that line, so nothing guesses a port or sleeps. Readiness is gRPC health SERVING read with
``Health.Watch`` (the server pushes changes; nothing polls). Stopping is by the child's PID:
SIGTERM (a worker drains), then SIGKILL after a grace.

This module imports grpc health stubs only, never ``protos`` generated modules, so it can be
loaded beside ``tritonclient`` (tests/compat). A restart-on-crash policy belongs in
:meth:`Supervisor._on_exit`, which the reader thread calls when a child's output ends.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = [
    "READY_LINE",
    "Child",
    "Supervisor",
    "cli_command",
    "flag_argv",
    "read_port_file",
    "wait_serving",
    "health_status",
    "stop_pid",
]

READY_LINE = "listening grpc="
_PR_SET_PDEATHSIG = 1


def cli_command(*args: str) -> list[str]:
    """The argv that runs ``runnerfleet ARGS...`` with this interpreter (no console script)."""
    return [sys.executable, "-c", "from runnerfleet.cli import main; main()", *args]


def flag_argv(flags: Mapping[str, object]) -> list[str]:
    """``{"max_batch_size": 8, "tls": True, "x": None}`` -> ``--max-batch-size 8 --tls``."""
    argv: list[str] = []
    for key, value in flags.items():
        if value is None or value is False:
            continue
        argv.append(f"--{key.replace('_', '-')}")
        if value is not True:
            argv.append(str(value))
    return argv


def read_port_file(path: str | os.PathLike[str]) -> dict[str, int]:
    """The ports a process reported in its ``--port-file``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {key: int(value) for key, value in data.items() if isinstance(value, int)}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclasses.dataclass
class Child:
    """One started process: name, Popen, the ports it reported and its captured output."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port_file: str
    grpc_port: int = 0
    metrics_port: int = 0
    log_lines: list[str] = dataclasses.field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        """Its gRPC port (as reported in the port file)."""
        return self.grpc_port

    @property
    def address(self) -> str:
        """host:port of its gRPC server."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """Starts children that report their own ports, and stops them by PID.

    ``env`` is the children's environment (default: ``os.environ`` as it is at each start);
    ``echo`` receives each output line as ``[name] line`` (cluster up prints them);
    ``own_session`` puts each child in its own session (a terminal's Ctrl-C reaches only the
    supervisor) and asks the kernel to SIGTERM it if the supervisor dies.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        echo: Callable[[str], None] | None = None,
        own_session: bool = False,
        stop_grace_s: float = 30.0,
    ) -> None:
        self.env = None if env is None else dict(env)
        self.cwd = None if cwd is None else str(cwd)
        self.echo = echo
        self.own_session = own_session
        self.stop_grace_s = stop_grace_s
        self.children: list[Child] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="rf-procs-")
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        host: str = "127.0.0.1",
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        port_file: str | None = None,
    ) -> Child:
        """Run ``argv`` plus ``--port-file F`` until it reports its ports; RuntimeError if not.

        An ``argv`` that already holds ``{port_file}`` gets the path there instead; ``env``, when
        given, is this child's whole environment.
        """
        if port_file is None:
            port_file = str(pathlib.Path(self._tmp.name) / f"{name}-{len(self.children)}.json")
        command = [a.replace("{port_file}", port_file) for a in argv]
        if "{port_file}" not in argv:
            command += ["--port-file", port_file]
        if env is None:
            env = os.environ if self.env is None else self.env
        proc_env = {**env}
        proc_env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=proc_env, cwd=self.cwd, start_new_session=self.own_session,
            preexec_fn=_die_with_parent if self.own_session else None,
        )  # fmt: skip
        child = Child(name, proc, host, port_file)
        with self._lock:
            self.children.append(child)
        ready = threading.Event()
        threading.Thread(
            target=self._read_output, args=(child, ready), daemon=True, name=f"log-{name}"
        ).start()
        if not ready.wait(timeout_s) or not os.path.exists(port_file):
            self.stop(child, signal.SIGKILL, grace_s=5.0)
            raise RuntimeError(
                f"{name} ({command[3:5]}) did not report its ports within {timeout_s} s "
                f"(exit {proc.returncode}):\n{child.log[-4000:]}"
            )
        ports = read_port_file(port_file)
        child.grpc_port, child.metrics_port = ports["grpc_port"], ports.get("metrics_port", 0)
        return child

    def _read_output(self, child: Child, ready: threading.Event) -> None:
        assert child.proc.stdout is not None
        for raw in iter(child.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            child.log_lines.append(line)
            if READY_LINE in line:
                ready.set()
            if self.echo is not None:
                self.echo(f"[{child.name}] {line.rstrip()}")
        ready.set()  # EOF: the process exited (start() checks the port file)
        self._on_exit(child)

    def _on_exit(self, child: Child) -> None:
        """Called once a child's output ends (it exited). The place for restart-on-crash."""

    def wait_serving(self, child: Child, timeout_s: float = 60.0) -> None:
        """Block until ``child`` reports gRPC health SERVING, else TimeoutError."""
        wait_serving(child.address, timeout_s)

    def stop(self, child: Child, sig: int = signal.SIGTERM, grace_s: float | None = None) -> int:
        """Send ``sig`` to ``child`` by PID, wait ``grace_s``, then SIGKILL; its exit code."""
        self.stop_many([child], sig, grace_s)
        return int(child.proc.returncode)

    def stop_many(
        self, children: Sequence[Child], sig: int = signal.SIGTERM, grace_s: float | None = None
    ) -> None:
        """Signal all ``children`` at once, then wait for each within one shared grace."""
        grace_s = self.stop_grace_s if grace_s is None else grace_s
        for child in children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, sig)
        deadline = time.monotonic() + grace_s
        for child in children:
            stop_pid(child.proc, max(deadline - time.monotonic(), 0.1), signalled=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.port_file)
            with self._lock:
                if child in self.children:
                    self.children.remove(child)

    def stop_all(self, grace_s: float | None = None) -> None:
        """Stop every child still known, newest first."""
        with self._lock:
            children = list(reversed(self.children))
        self.stop_many(children, grace_s=grace_s)

    def close(self) -> None:
        """Stop all children and remove the port files' folder."""
        self.stop_all()
        self._tmp.cleanup()


def stop_pid(
    proc: subprocess.Popen[bytes], grace_s: float, *, signalled: bool = False
) -> int | None:
    """SIGTERM ``proc`` by PID (unless ``signalled``), wait ``grace_s``, then SIGKILL it."""
    if proc.poll() is None and not signalled:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def health_status(address: str, service: str = "", timeout_s: float = 5.0) -> str:
    """The current gRPC health status name (``SERVING``, ``NOT_SERVING``, ...)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def wait_serving(address: str, timeout_s: float = 60.0, service: str = "") -> None:
    """Block until ``address`` reports gRPC health SERVING (Health.Watch), else TimeoutError."""
    with grpc.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s, wait_for_ready=True
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
