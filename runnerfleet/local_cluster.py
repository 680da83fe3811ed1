"""A gateway and N workers as local child processes: start, wait until SERVING, stop them all.

Used by `runnerfleet cluster up`, the demo and the gateway benchmark; the process mechanics are
`runnerfleet.supervisor`'s. Children bind their ports (workers on port 0) and report them with
`--port-file`; readiness is gRPC health SERVING. Children run in their own session so a
terminal's Ctrl-C reaches only this supervisor, which then stops them in order: the gateway
first (no new traffic), then the workers (SIGTERM: they drain). They also get SIGTERM from the
kernel if the supervisor dies (PR_SET_PDEATHSIG), so nothing is left running. With a
`restart` policy (cluster up) a crashed child is restarted on its ports with back-off, and a
crash loop is reported to `on_give_up` (see `runnerfleet.supervisor`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from runnerfleet.restart_policy import RestartPolicy
from runnerfleet.supervisor import Child, Supervisor, cli_command, flag_argv, wait_serving

__all__ = ["ChildProcess", "LocalCluster", "wait_serving"]

ChildProcess = Child


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
        service: str | None = None,
        worker_flags: dict[str, object] | None = None,
        gateway_flags: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
        restart: RestartPolicy | None = None,
        on_restart: Callable[[Child], None] = lambda child: None,
        on_give_up: Callable[[Child], None] = lambda child: None,
    ) -> None:
        if workers < 1:
            raise ValueError("a cluster needs at least one worker")
        self.host, self.port, self.metrics_port = host, port, metrics_port
        self.n_workers, self.models, self.device = workers, list(models), device
        self.service = service  # module:attr: workers host its runners, the gateway its APIs
        self.worker_flags = dict(worker_flags or {})
        self.gateway_flags = dict(gateway_flags or {})
        self.restart = restart
        self.supervisor = Supervisor(
            env=env, echo=echo, own_session=True, on_restart=on_restart, on_give_up=on_give_up
        )
        self.workers: list[Child] = []
        self.gateway: Child | None = None
        self._lock = threading.Lock()

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the workers, wait until all are SERVING, then the gateway; stop all on failure."""
        deadline = time.monotonic() + timeout_s
        try:
            for index in range(self.n_workers):
                argv = ["worker", "--device", self.device]
                argv += ["--models", ",".join(self.models)] if self.models else []
                argv += ["--service", self.service] if self.service else []
                argv += ["--port", "0", "--metrics-port", "0", *flag_argv(self.worker_flags)]
                self.workers.append(self._spawn(f"worker-{index}", argv, deadline))
            for worker in self.workers:
                wait_serving(worker.address, max(deadline - time.monotonic(), 1.0))
            argv = ["gateway", "--workers", ",".join(w.address for w in self.workers)]
            argv += ["--service", self.service] if self.service else []
            argv += ["--port", str(self.port), "--metrics-port", str(self.metrics_port)]
            argv += flag_argv(self.gateway_flags)
            self.gateway = self._spawn("gateway", argv, deadline)
            wait_serving(self.gateway.address, max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str], deadline: float) -> Child:
        command = cli_command(*argv, "--host", self.host)
        return self.supervisor.start(
            name,
            command,
            host=self.host,
            timeout_s=max(deadline - time.monotonic(), 0.1),
            restart=self.restart,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the gateway, then the workers (they drain); SIGKILL what outlives `timeout_s`."""
        with self._lock:
            if self.gateway is not None:
                self.supervisor.stop_many([self.gateway], grace_s=timeout_s)
            self.supervisor.stop_many(self.workers, grace_s=timeout_s)
            self.supervisor.close()

    def running(self) -> list[Child]:
        """Children that have not exited."""
        children = [*self.workers, *([self.gateway] if self.gateway else [])]
        return [c for c in children if c.alive()]
