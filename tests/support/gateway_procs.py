"""Start `runnerfleet gateway` in tests (port 0, --port-file, health SERVING); no protos imports."""

from __future__ import annotations

import os
from collections.abc import Sequence

from runnerfleet.supervisor import cli_command, flag_argv
from tests.support.procs import ProcessHandle, start_process, wait_serving

__all__ = ["start_gateway"]


def start_gateway(
    workers: Sequence[str] = (),
    *,
    store_home: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    wait: bool = True,
    port: int = 0,
    **flags: object,
) -> ProcessHandle:
    """Start a gateway on 127.0.0.1 routing to `workers`; flags as `max_inflight=8`.

    A flag whose value is True is passed bare; `port` may be fixed to restart on the same port.
    With `wait`, returns once gRPC health is SERVING (the pool has done its first discovery).
    """
    argv = cli_command(
        "gateway", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0",
        "--port-file", "{port_file}",
    )  # fmt: skip
    if workers:
        argv += ["--workers", ",".join(workers)]
    argv += flag_argv(flags)
    proc_env = dict(os.environ if env is None else env)
    if store_home is not None:
        proc_env["RUNNERFLEET_HOME"] = str(store_home)
    handle = start_process(argv, env=proc_env, timeout_s=timeout_s)
    if wait:
        wait_serving(handle.address, timeout_s=timeout_s)
    return handle
