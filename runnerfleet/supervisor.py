"""The one process supervisor: start a RunnerFleet process, learn its ports, wait, stop by PID.

Used by ``runnerfleet cluster up`` (``LocalCluster``), the tests (``tests/support``) and the
benchmark (``bench/procs.py``). A child binds port 0 and writes ``--port-file`` (JSON with
``grpc_port``, ``metrics_port``, ``pid``), then logs ``listening grpc=...``; a reader thread
sees that line, so nothing guesses a port or sleeps. Readiness is gRPC health SERVING read with
``Health.Watch`` (the server pushes changes; nothing polls). Stopping is by the child's PID:
SIGTERM (a worker drains), then SIGKILL after a grace.

This module imports grpc health stubs only, never ``protos`` generated modules, so it can be
loaded beside ``tritonclient`` (tests/compat).

Restart on crash (``start(..., restart=RestartPolicy())``, used by ``cluster up``): when a
child's output ends and nobody asked it to stop, :meth:`Supervisor._on_exit` asks the child's
``RestartTracker`` for a back-off, logs ``restarting NAME ... (restart N)``, waits, and runs the
same command again on the ports it had (so the gateway's ``--workers`` list and the clients'
addresses stay right). A crash loop (``runnerfleet.restart_policy``) stops the restarts, logs
``NAME is crash-looping`` and calls ``on_give_up(child)``; every restart calls
``on_restart(child)``. Tests and the benchmark start children without a policy: a crash stays
a crash there.
"""

from __future__ import annotations

import concurrent.futures
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

from runnerfleet.restart_policy import RestartPolicy, RestartTracker

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
    command: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    tracker: RestartTracker | None = None  # None: never restarted
    started_s: float = 0.0  # time.monotonic() of its latest start
    stopping: bool = False  # the supervisor asked it to stop: an exit is not a crash
    gave_up: bool = False  # crash loop: no more restarts
    stopped: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def restarts(self) -> int:
        """How many times it was restarted after a crash."""
        return 0 if self.tracker is None else self.tracker.restarts

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
        on_restart: Callable[[Child], None] = lambda child: None,
        on_give_up: Callable[[Child], None] = lambda child: None,
    ) -> None:
        self.env = None if env is None else dict(env)
        self.cwd = None if cwd is None else str(cwd)
        self.echo = echo
        self.own_session = own_session
        self.stop_grace_s = stop_grace_s
        self.on_restart = on_restart
        self.on_give_up = on_give_up
        self.children: list[Child] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="rf-procs-")
        self._lock = threading.Lock()
        self._spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        host: str = "127.0.0.1",
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        port_file: str | None = None,
        restart: RestartPolicy | None = None,
    ) -> Child:
        """Run ``argv`` plus ``--port-file F`` until it reports its ports; RuntimeError if not.

        An ``argv`` that already holds ``{port_file}`` gets the path there instead; ``env``, when
        given, is this child's whole environment; ``restart`` restarts it after a crash.
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
        child = Child(name, self._popen(command, proc_env), host, port_file)
        child.command, child.env = command, proc_env
        child.started_s = time.monotonic()
        with self._lock:
            self.children.append(child)
        ready = self._follow(child)
        if not ready.wait(timeout_s) or not os.path.exists(port_file):
            self.stop(child, signal.SIGKILL, grace_s=5.0)
            raise RuntimeError(
                f"{name} ({command[3:5]}) did not report its ports within {timeout_s} s "
                f"(exit {child.proc.returncode}):\n{child.log[-4000:]}"
            )
        ports = read_port_file(port_file)
        child.grpc_port, child.metrics_port = ports["grpc_port"], ports.get("metrics_port", 0)
        if restart is not None:
            child.tracker = RestartTracker(restart)
        return child

    def _popen(self, command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.cwd, start_new_session=self.own_session,
            preexec_fn=_die_with_parent if self.own_session else None,
        )  # fmt: skip

    def _follow(self, child: Child) -> threading.Event:
        """Start the thread that reads the child's output; the event fires at its ready line."""
        ready = threading.Event()
        threading.Thread(
            target=self._read_output, args=(child, child.proc, ready), daemon=True,
            name=f"log-{child.name}",
        ).start()  # fmt: skip
        return ready

    def _read_output(
        self, child: Child, proc: subprocess.Popen[bytes], ready: threading.Event
    ) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            child.log_lines.append(line)
            if READY_LINE in line:
                ready.set()
            if self.echo is not None:
                self.echo(f"[{child.name}] {line.rstrip()}")
        ready.set()  # EOF: the process exited (start() checks the port file)
        proc.wait()
        self._on_exit(child)

    def _say(self, child: Child, message: str) -> None:
        line = f"supervisor: {message}\n"
        child.log_lines.append(line)
        if self.echo is not None:
            self.echo(f"[supervisor] {message}")

    def _on_exit(self, child: Child) -> None:
        """Called once a child's output ends (it exited): restart it if it crashed (module doc)."""
        if child.tracker is None or child.stopping:
            return
        now_s = time.monotonic()
        code = child.proc.returncode
        delay_s = child.tracker.next_delay_s(now_s, now_s - child.started_s)
        if delay_s is None:
            child.gave_up = True
            policy = child.tracker.policy
            self._say(
                child,
                f"{child.name} is crash-looping ({policy.max_restarts} restarts within "
                f"{policy.window_s:.0f} s, last exit {code}): not restarting it again",
            )
            self.on_give_up(child)
            return
        self._say(
            child,
            f"restarting {child.name} (pid {child.pid} exited with {code}) in {delay_s:.2f} s "
            f"(restart {child.tracker.restarts})",
        )
        if child.stopped.wait(delay_s):
            return
        self._respawn(child)

    def _respawn(self, child: Child) -> None:
        """Run the child's command again on the ports it had; its output is followed again."""
        command = _same_ports(child.command, child.grpc_port, child.metrics_port)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(child.port_file)
        with self._lock:
            if child.stopping:
                return
            # PR_SET_PDEATHSIG fires when the forking *thread* ends, and this reader thread
            # ends soon: fork from the supervisor's long-lived spawner thread instead
            child.proc = self._spawner.submit(self._popen, command, child.env).result()
            child.started_s = time.monotonic()
        ready = self._follow(child)
        ready.wait(60.0)
        try:
            ports = read_port_file(child.port_file)
        except (OSError, ValueError):
            return  # it died before it listened: its reader thread sees the exit
        child.grpc_port, child.metrics_port = ports["grpc_port"], ports.get("metrics_port", 0)
        if child.alive():
            self.on_restart(child)

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
            with self._lock:
                child.stopping = True
            child.stopped.set()
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
        self._spawner.shutdown(wait=False)
        self._tmp.cleanup()


def _same_ports(command: Sequence[str], grpc_port: int, metrics_port: int) -> list[str]:
    """``command`` with the values of ``--port`` and ``--metrics-port`` set to these ports."""
    out = list(command)
    for flag, port in (("--port", grpc_port), ("--metrics-port", metrics_port)):
        if port and flag in out[:-1]:
            out[out.index(flag) + 1] = str(port)
    return out


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
