"""The one skeleton of the benchmark's own gRPC servers: bind, announce, serve until signalled.

bench/bare_server.py, bench/zerocopy_echo.py and bench/refuse_floor.py differ only in their
handlers; each builds a ``grpc.aio`` server with ``server_options`` and hands it to
``serve_until_signalled``, which binds 127.0.0.1, writes the port file (what the harness
waits for), prints the supervisor's ready line (what ``runnerfleet.supervisor`` waits for),
and stops the server on SIGTERM or SIGINT, or after ``max_s`` (the runner stops it long before).
All run on the loop RunnerFleet's processes run on (``protos.event_loop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any

import grpc

from protos import event_loop
from protos.port_file import write_port_file
from runnerfleet.supervisor import READY_LINE

__all__ = ["run", "serve_until_signalled", "server_options"]

MAX_MSG = 256 * 2**20


def server_options(max_message_bytes: int = MAX_MSG) -> list[tuple[str, int]]:
    """Message limits both ways (256 MiB by default, as the worker's)."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


async def serve_until_signalled(
    server: grpc.aio.Server, port: int, port_file: str, *, max_s: float = 4 * 3600
) -> None:
    """Bind 127.0.0.1:``port`` (0: any), start, announce; stop on SIGTERM/SIGINT or ``max_s``."""
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    write_port_file(port_file, bound)
    print(f"{READY_LINE}127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max_s)
    await server.stop(grace=1)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a server's coroutine on RunnerFleet's loop; Ctrl-C ends it quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(main)
