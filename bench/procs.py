"""Processes the harness starts: each in its own session, logged to a file, stopped by its PID.

Every process started here is remembered; `stop_all()` (also run at exit and on SIGTERM by the
harness) stops those still running: SIGTERM to the process group the harness created, a bounded
wait, then SIGKILL. Nothing else is ever signalled. RunnerFleet processes report their ports in
a port file and their readiness on gRPC health, read with `runnerfleet.supervisor` (the one
supervisor; `bench.gateway_bench` and `bench.worker_bench` start processes through it). What
stays here is what the peers (MLServer, PyTriton) need: logs in files, process groups.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Proc",
    "start",
    "stop",
    "stop_all",
    "wait_for",
    "wait_port_file",
    "wait_grpc_ready",
]

_STARTED: list[Proc] = []


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: pathlib.Path
    info: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")


def start(
    name: str,
    argv: Sequence[str],
    log_path: pathlib.Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    try:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    proc = Proc(name=name, popen=popen, log_path=log_path)
    _STARTED.append(proc)
    return proc


def stop(proc: Proc, timeout: float = 20.0) -> None:
    """SIGTERM the process group this harness created for `proc`, wait, then SIGKILL it."""
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=timeout)
    # Children (PyTriton's tritonserver and stubs, MLServer's workers) share the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=5)
    if proc in _STARTED:
        _STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(_STARTED)):
        stop(proc, timeout=10.0)


atexit.register(stop_all)


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, proc: Proc | None = None
) -> None:
    """Poll `check` until true; raise with `proc`'s log tail when it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}; "
                f"log tail:\n{proc.log_tail()}"
            )
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.2)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; log tail:\n{tail}")


def wait_port_file(path: pathlib.Path, timeout: float, proc: Proc | None = None) -> dict:
    """The ports a RunnerFleet process reported in its --port-file, once it is there."""
    from runnerfleet.supervisor import read_port_file

    box: dict = {}

    def check() -> bool:
        if not path.exists():
            return False
        box.update(read_port_file(path))
        return True

    wait_for(f"port file {path}", check, timeout, proc)
    return box


def wait_grpc_ready(
    target: str,
    timeout: float,
    proc: Proc | None = None,
    *,
    health: bool = True,
    model: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """Ready = gRPC health SERVING (RunnerFleet) and/or ModelReady for `model` (any OIP server)."""
    import grpc

    def check() -> bool:
        with grpc.insecure_channel(target) as ch:
            if health:
                from runnerfleet.supervisor import health_status

                if health_status(target, timeout_s=2) != "SERVING":
                    return False
            if model:
                from protos import grpc_service_pb2 as pb
                from protos import grpc_service_pb2_grpc as pbg

                r = pbg.GRPCInferenceServiceStub(ch).ModelReady(
                    pb.ModelReadyRequest(name=model), timeout=2, metadata=list(headers)
                )
                if not r.ready:
                    return False
        return True

    wait_for(f"{target} ready", check, timeout, proc)
