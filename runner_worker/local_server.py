"""The worker's end of the local link (``protos/local_link.py``): ModelInfer on a Unix socket.

Each request frame becomes one task running ``InferencePlane.infer_wire``, the same call the
gRPC ModelInfer and ForwardBatch handlers make (admission, drain, deadlines, metrics, tracing
all live there), so a request answers the same whichever way it came. A cancel frame, or the
connection closing, cancels the tasks it names, as a cancelled gRPC call does.

Offered only when the worker runs without TLS and without credentials: the socket's directory
(``<tmp>/runnerfleet-<uid>``, mode 0700, checked to be this user's and not a link) then limits
it to this user's processes, which could reach the loopback gRPC port anyway. With TLS or
tokens configured there is no socket, and gateways use gRPC. The socket is removed at exit;
sockets of workers that no longer exist are removed when a worker starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from typing import cast

from protos.errors import ErrorCode, RunnerFleetError
from protos.local_link import (
    KIND_CANCEL,
    FrameError,
    answer_frame,
    read_requests,
    socket_dir,
    socket_name,
    socket_pid,
)
from protos.pid import remove_files_of_dead_processes
from protos.status import status_number
from runner_worker.inference import InferencePlane

__all__ = ["LocalServer"]

log = logging.getLogger(__name__)


class LocalServer:
    """Serves request frames on one Unix socket; ``path`` is what DescribeModels offers."""

    def __init__(self, plane: InferencePlane, max_message_bytes: int) -> None:
        self._plane = plane
        self._max_bytes = max_message_bytes
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self.path = ""

    async def start(self) -> str:
        """Listen; the socket path, or "" when none can be offered (logged)."""
        directory = socket_dir()
        if directory is None:
            return ""
        remove_files_of_dead_processes(directory, socket_pid)  # left by killed workers
        path = os.path.join(directory, socket_name(os.getpid(), secrets.token_hex(4)))
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_unix_server(
                lambda: _Connection(self._plane, self._max_bytes, self._connections), path
            )
            os.chmod(path, 0o600)
        except OSError as exc:
            log.warning("not offering a local socket: %s", exc)
            return ""
        self.path = path
        return path

    async def stop(self) -> None:
        """Stop listening, cancel what runs, remove the socket."""
        if self._server is not None:
            self._server.close()
        tasks = [t for c in list(self._connections) for t in c.close()]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


class _Connection(asyncio.Protocol):
    """One gateway's connection: frames in, one task per request, answers out in batches.

    Answers finished in one turn of the event loop (a batch's) leave in one write.
    """

    def __init__(self, plane: InferencePlane, max_bytes: int, registry: set[_Connection]) -> None:
        self._plane = plane
        self._max_bytes = max_bytes
        self._registry = registry
        self._buffer = bytearray()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            requests = read_requests(self._buffer, self._max_bytes)
        except FrameError as exc:
            log.warning("local link: %s; closing the connection", exc)
            self.close()
            return
        now_s = time.monotonic()
        for r in requests:
            if r.kind == KIND_CANCEL:
                task = self._running.pop(r.rid, None)
                if task is not None:
                    task.cancel()
                continue
            deadline_s = now_s + r.timeout_s if r.timeout_s > 0 else None
            task = asyncio.get_running_loop().create_task(
                self._answer(r.rid, r.payload, deadline_s, r.traceparent or None)
            )
            self._running[r.rid] = task
            task.add_done_callback(functools.partial(_forget, self._running, r.rid))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> list[asyncio.Task[None]]:
        """Cancel every request of this connection and close it; the cancelled tasks."""
        self._registry.discard(self)
        tasks = list(self._running.values())
        self._running.clear()
        for task in tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()
        return tasks

    async def _answer(
        self, rid: int, payload: bytes, deadline_s: float | None, traceparent: str | None
    ) -> None:
        try:
            response = await self._plane.infer_wire(payload, deadline_s, traceparent)
            frame = answer_frame(rid, 0, response)
        except RunnerFleetError as exc:
            frame = answer_frame(rid, status_number(exc.code), exc.message.encode())
        except Exception:  # a bug: one logged traceback and INTERNAL, never a silent hang
            log.exception("local link: request %d failed", rid)
            frame = answer_frame(rid, status_number(ErrorCode.INTERNAL), b"internal error")
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))


def _forget(running: dict[int, asyncio.Task[None]], rid: int, task: asyncio.Task[None]) -> None:
    if running.get(rid) is task:
        del running[rid]
