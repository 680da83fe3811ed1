"""The gateway's end of the local link (``protos/local_link.py``): forwards over a Unix socket.

A worker on this host offers a socket in DescribeModels; ``Worker`` then sends its lone
forwards (coalesced calls of one request) here instead of through gRPC; calls of several stay
one ForwardBatch (``api_gateway/pool.py`` says why). One connection per worker carries
every request in flight; each request is a frame with its own id, timeout and traceparent,
and answers come back in any order.

Failure modes, each mapped to what the same failure of a gRPC call gives, so the forwarder's
retry policy and the outlier detector see no difference:

- the connection breaks (worker killed, socket closed): every request on it fails as a broken
  call (UNAVAILABLE, ``transport``), which the forwarder may retry on another replica; the
  next forward reconnects;
- the socket cannot be opened (another host or container, a worker gone): the forward goes
  through gRPC, and the link is tried again after ``RETRY_AFTER_S``;
- a request's timeout passes (a stopped worker): DEADLINE_EXCEEDED for it, and a cancel frame
  so the worker stops working on it; a caller that cancels (a lost hedge) sends one too;
- a frame the gateway cannot read: the connection is closed, as above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

from api_gateway.coalescer import ForwardOutcome
from protos.errors import ErrorCode
from protos.local_link import (
    FrameError,
    cancel_frame,
    is_offerable,
    read_answers,
    request_frame,
)
from protos.status import code_from_status_number

__all__ = ["LocalLink", "RETRY_AFTER_S"]

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5.0  # after a failed connect, forwards use gRPC this long before trying again
_ID_MASK = 0xFFFFFFFF


class LocalLink:
    """One worker's Unix-socket connection and the requests waiting on it."""

    def __init__(self, address: str, max_message_bytes: int) -> None:
        self.address = address  # the worker's gRPC address, for logs
        self._max_bytes = max_message_bytes
        self.path = ""
        self._conn: _LinkProtocol | None = None
        self._connecting: asyncio.Future[bool] | None = None
        self._next_id = 0
        self._retry_at_s = 0.0
        self._refused = ""

    def offer(self, path: str) -> None:
        """The socket the worker offers now ("" = none); a new one replaces the connection.

        Only a worker socket in this user's private directory is taken
        (``protos.local_link.is_offerable``); anything else is ignored, and gRPC is used.
        """
        if path and not is_offerable(path):
            if path != self._refused:
                log.warning(
                    "worker %s offers socket %r outside this user's private directory: ignored",
                    self.address,
                    path,
                )
                self._refused = path
            path = ""
        if path != self.path:
            self.close("the worker offers another socket")
            self.path = path
            self._retry_at_s = 0.0

    @property
    def usable(self) -> bool:
        """Whether forwards should try this link (offered, and not failing to connect)."""
        return bool(self.path) and (self._conn is not None or time.monotonic() >= self._retry_at_s)

    async def call(
        self, request: bytes, timeout_s: float | None, traceparent: str = ""
    ) -> ForwardOutcome | None:
        """The worker's answer to ``request``, or None when the link cannot be opened (gRPC)."""
        conn = self._conn or await self._connected()
        if conn is None:
            return None
        rid, future = conn.send(self._new_id(conn), request, timeout_s or 0.0, traceparent)
        try:
            done, _ = await asyncio.wait((future,), timeout=timeout_s)
        except asyncio.CancelledError:
            conn.cancel(rid)
            raise
        if done:
            return future.result()
        conn.cancel(rid)
        return ForwardOutcome(
            ErrorCode.DEADLINE_EXCEEDED, b"", f"worker {self.address} did not answer in time"
        )

    def close(self, why: str = "closed") -> None:
        """Drop the connection; requests on it fail as broken calls."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort(why)

    def _new_id(self, conn: _LinkProtocol) -> int:
        self._next_id = (self._next_id + 1) & _ID_MASK
        while self._next_id in conn.pending:
            self._next_id = (self._next_id + 1) & _ID_MASK
        return self._next_id

    async def _connected(self) -> _LinkProtocol | None:
        if not self.usable:
            return None
        if self._connecting is None:  # one connect at a time; the others wait for it
            self._connecting = asyncio.get_running_loop().create_future()
            try:
                await self._connect()
            finally:
                self._connecting.set_result(self._conn is not None)
                self._connecting = None
            return self._conn
        await asyncio.shield(self._connecting)
        return self._conn

    async def _connect(self) -> None:
        path = self.path
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_unix_connection(
                lambda: _LinkProtocol(self.address, self._max_bytes, self._lost), path
            )
        except OSError as exc:
            self._retry_at_s = time.monotonic() + RETRY_AFTER_S
            log.info(
                "worker %s: local socket unreachable (%s); forwarding over gRPC", self.address, exc
            )
            return
        if path != self.path:  # offered another one meanwhile
            conn.abort("the worker offers another socket")
            return
        self._conn = conn

    def _lost(self, conn: _LinkProtocol) -> None:
        if self._conn is conn:
            self._conn = None


class _LinkProtocol(asyncio.Protocol):
    """The connection: a frame out per request, answers in, parsed as they come."""

    def __init__(
        self, address: str, max_bytes: int, on_lost: Callable[[_LinkProtocol], None]
    ) -> None:
        self._address = address
        self._max_bytes = max_bytes
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.pending: dict[int, asyncio.Future[ForwardOutcome]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(
        self, rid: int, request: bytes, timeout_s: float, traceparent: str
    ) -> tuple[int, asyncio.Future[ForwardOutcome]]:
        """Write one request frame; its id and the future its answer resolves."""
        future: asyncio.Future[ForwardOutcome] = asyncio.get_running_loop().create_future()
        if self._transport is None or self._transport.is_closing():
            future.set_result(self._broken("the connection is closed"))
            return rid, future
        self.pending[rid] = future
        self._transport.write(request_frame(rid, request, timeout_s, traceparent))
        return rid, future

    def cancel(self, rid: int) -> None:
        """Stop waiting for ``rid`` and tell the worker to stop working on it."""
        if self.pending.pop(rid, None) is None:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(cancel_frame(rid))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            answers = read_answers(self._buffer, self._max_bytes)
        except FrameError as exc:
            self.abort(str(exc))
            return
        for a in answers:
            future = self.pending.pop(a.rid, None)
            if future is None or future.done():
                continue  # timed out or cancelled meanwhile
            if a.status == 0:
                future.set_result(ForwardOutcome(None, a.payload))
            else:
                code = code_from_status_number(a.status) or ErrorCode.INTERNAL
                message = a.payload.decode("utf-8", "replace")
                future.set_result(ForwardOutcome(code, b"", message))

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection lost ({type(exc).__name__})" if exc else "the worker closed it"
        self.abort(why)

    def abort(self, why: str) -> None:
        """Close; every request waiting on this connection fails as a broken call."""
        self._on_lost(self)
        if self._transport is not None:
            self._transport.close()
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result(self._broken(why))

    def _broken(self, why: str) -> ForwardOutcome:
        return ForwardOutcome(
            ErrorCode.UNAVAILABLE, b"", f"worker {self._address}: {why}", transport=True
        )
