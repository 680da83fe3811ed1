"""The local link: gateway -> worker ModelInfer over a Unix socket, in length-prefixed frames.

A grpc.aio unary call costs both ends about 0.3 ms of CPU each (HTTP/2 framing, the C core's
completion queue, a task per call); a frame over a Unix socket costs tens of microseconds. On
one host the gateway therefore sends model requests to a worker through the socket the worker
offers in DescribeModels (``local_socket``) when it has one request to send (a coalesced call
of several stays one gRPC ForwardBatch), and keeps gRPC for everything else (health,
describe, control, shared-memory registration) and for workers it cannot reach that way.

Frames, little-endian, one connection carrying many requests at once (answers in any order):

- request ``REQUEST`` (gateway -> worker): kind u8 = 1, id u32, payload length u32, timeout
  f64 seconds (0 = none), traceparent length u16; then the traceparent (ASCII), then the
  serialized ModelInferRequest.
- cancel (gateway -> worker): kind u8 = 2, id u32, then zeros as a request header with no
  body: the worker cancels that request's task (a cancelled hedge, a caller gone).
- answer ``ANSWER`` (worker -> gateway): kind u8 = 3, id u32, status u8 (0 = OK, else a gRPC
  status number), payload length u32; then the serialized ModelInferResponse, or the error
  message (UTF-8).

Either side closes the connection on a frame it cannot read (unknown kind, a length over the
limit, a truncated frame); the gateway then fails that connection's requests as a broken call
(retried elsewhere, as a reset gRPC connection is). Transport-neutral: no grpc import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import struct
import tempfile
from typing import NamedTuple

__all__ = [
    "socket_dir",
    "socket_name",
    "is_offerable",
    "REQUEST",
    "ANSWER",
    "KIND_INFER",
    "KIND_CANCEL",
    "KIND_ANSWER",
    "request_frame",
    "cancel_frame",
    "answer_frame",
    "FrameError",
    "Request",
    "Answer",
    "read_requests",
    "read_answers",
]

log = logging.getLogger(__name__)

KIND_INFER, KIND_CANCEL, KIND_ANSWER = 1, 2, 3
_SOCKET_NAME = re.compile(r"^worker-(\d+)-[0-9a-f]+\.sock$")


def socket_dir(*, create: bool = True) -> str | None:
    """This user's private directory for worker sockets (made if missing); None if unsafe.

    ``<tmp>/runnerfleet-<uid>``, mode 0700, this user's, not a link. Workers listen there;
    gateways connect only to sockets there, so a worker cannot point a gateway at another
    socket of the host, and a worker of another user is never reached this way.
    """
    path = os.path.join(tempfile.gettempdir(), f"runnerfleet-{os.getuid()}")
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("%s is not a private directory of this user: no local link", path)
        return None
    return path


def socket_name(pid: int, token: str) -> str:
    """The file name of a worker's socket: its pid (for removing stale ones) and a token."""
    return f"worker-{pid}-{token}.sock"


def socket_pid(name: str) -> int | None:
    """The pid in a worker socket's file name, or None if ``name`` is not one."""
    match = _SOCKET_NAME.match(name)
    return int(match.group(1)) if match else None


def is_offerable(path: str) -> bool:
    """Whether a gateway may connect to ``path``: a worker socket in this user's directory."""
    directory = socket_dir(create=False)
    return (
        directory is not None
        and os.path.dirname(path) == directory
        and socket_pid(os.path.basename(path)) is not None
    )


REQUEST = struct.Struct("<BIIdH")  # kind, id, payload bytes, timeout_s, traceparent bytes
ANSWER = struct.Struct("<BIBI")  # kind, id, status, payload bytes
MAX_TRACEPARENT_BYTES = 512


def request_frame(rid: int, payload: bytes, timeout_s: float, traceparent: str = "") -> bytes:
    """One request frame (header, traceparent, payload) as bytes."""
    tp = traceparent.encode("ascii", "replace")[:MAX_TRACEPARENT_BYTES]
    return REQUEST.pack(KIND_INFER, rid, len(payload), timeout_s, len(tp)) + tp + payload


def cancel_frame(rid: int) -> bytes:
    """The frame that cancels request ``rid``."""
    return REQUEST.pack(KIND_CANCEL, rid, 0, 0.0, 0)


def answer_frame(rid: int, status: int, payload: bytes) -> bytes:
    """One answer frame: status 0 and a response, or a gRPC status number and a message."""
    return ANSWER.pack(KIND_ANSWER, rid, status, len(payload)) + payload


class FrameError(Exception):
    """A frame that cannot be read: the connection is to be closed."""


class Request(NamedTuple):
    kind: int  # KIND_INFER or KIND_CANCEL
    rid: int
    timeout_s: float
    traceparent: str
    payload: bytes


class Answer(NamedTuple):
    rid: int
    status: int
    payload: bytes


def read_requests(buffer: bytearray, max_bytes: int) -> list[Request]:
    """Cut every complete request or cancel frame off the front of ``buffer``."""
    out: list[Request] = []
    pos, end, head = 0, len(buffer), REQUEST.size
    while end - pos >= head:
        kind, rid, size, timeout_s, tp_size = REQUEST.unpack_from(buffer, pos)
        if kind == KIND_CANCEL:
            out.append(Request(kind, rid, 0.0, "", b""))
            pos += head
            continue
        if kind != KIND_INFER or size > max_bytes or tp_size > MAX_TRACEPARENT_BYTES:
            raise FrameError(f"unreadable request frame (kind {kind}, {size} bytes)")
        if end - pos < head + tp_size + size:
            break
        start = pos + head
        traceparent = buffer[start : start + tp_size].decode("ascii", "replace")
        payload = bytes(buffer[start + tp_size : start + tp_size + size])
        out.append(Request(kind, rid, timeout_s, traceparent, payload))
        pos = start + tp_size + size
    if pos:
        del buffer[:pos]
    return out


def read_answers(buffer: bytearray, max_bytes: int) -> list[Answer]:
    """Cut every complete answer frame off the front of ``buffer``."""
    out: list[Answer] = []
    pos, end, head = 0, len(buffer), ANSWER.size
    while end - pos >= head:
        kind, rid, status, size = ANSWER.unpack_from(buffer, pos)
        if kind != KIND_ANSWER or size > max_bytes:
            raise FrameError(f"unreadable answer frame (kind {kind}, {size} bytes)")
        if end - pos < head + size:
            break
        out.append(Answer(rid, status, bytes(buffer[pos + head : pos + head + size])))
        pos += head + size
    if pos:
        del buffer[:pos]
    return out
