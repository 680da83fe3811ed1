"""The local link over a real Unix socket: the worker's server and the gateway's link."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from api_gateway.local_link import LocalLink
from protos.errors import ErrorCode, InvalidArgument, Unavailable
from protos.local_link import REQUEST, socket_dir
from runner_worker.local_server import LocalServer


class FakePlane:
    """``InferencePlane.infer_wire``'s contract: bytes in, bytes out or a RunnerFleetError."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, float | None, str | None]] = []
        self.cancelled = 0

    async def infer_wire(
        self, data: bytes, deadline_s: float | None = None, traceparent: str | None = None
    ) -> bytes:
        self.seen.append((data, deadline_s, traceparent))
        if data.startswith(b"bad"):
            raise InvalidArgument("request is not a valid ModelInferRequest")
        if data.startswith(b"busy"):
            raise Unavailable("worker is draining")
        if data.startswith(b"hang"):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if data.startswith(b"slow"):
            await asyncio.sleep(0.02 * (data[-1] % 5))  # answers come back out of order
        return b"answer:" + data


async def _pair(plane: FakePlane) -> tuple[LocalServer, LocalLink]:
    server = LocalServer(plane, max_message_bytes=1 << 20)  # type: ignore[arg-type]
    path = await server.start()
    assert path
    assert os.path.exists(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    link = LocalLink("worker:1", 1 << 20)
    link.offer(path)
    return server, link


def test_many_requests_in_flight_answer_each_its_own() -> None:
    async def main() -> None:
        plane = FakePlane()
        server, link = await _pair(plane)
        items = [(b"slow" + bytes([i]), 5.0, f"00-{i:032x}-{i:016x}-01") for i in range(40)]
        outcomes = await asyncio.gather(*(link.call(data, 5.0, tp) for data, _, tp in items))
        assert [o.payload for o in outcomes] == [b"answer:" + it[0] for it in items]
        assert all(o.ok for o in outcomes)
        by_data = {d: (dl, tp) for d, dl, tp in plane.seen}
        data, _, traceparent = items[3]
        deadline_s, seen_tp = by_data[data]
        assert seen_tp == traceparent
        assert deadline_s is not None
        assert 0 < deadline_s - time.monotonic() <= 5.0
        link.close()
        await server.stop()
        assert not os.path.exists(server.path)

    asyncio.run(main())


def test_worker_errors_come_back_with_their_code_and_are_not_transport_failures() -> None:
    async def main() -> None:
        server, link = await _pair(FakePlane())
        bad, busy = await asyncio.gather(link.call(b"bad", 5.0), link.call(b"busy", 5.0))
        assert bad is not None
        assert busy is not None
        assert bad.code is ErrorCode.INVALID_ARGUMENT
        assert not bad.transport
        assert "valid ModelInferRequest" in bad.message
        assert busy.code is ErrorCode.UNAVAILABLE
        assert not busy.transport
        link.close()
        await server.stop()

    asyncio.run(main())


def test_a_request_past_its_timeout_is_cancelled_at_the_worker() -> None:
    async def main() -> None:
        plane = FakePlane()
        server, link = await _pair(plane)
        late = await link.call(b"hang", 0.05)
        assert late is not None
        assert late.code is ErrorCode.DEADLINE_EXCEEDED
        assert not late.transport
        for _ in range(100):
            if plane.cancelled:
                break
            await asyncio.sleep(0.01)
        assert plane.cancelled == 1
        ok = await link.call(b"fine", 5.0)
        assert ok is not None
        assert ok.payload == b"answer:fine"  # the connection carries on
        link.close()
        await server.stop()

    asyncio.run(main())


def test_a_caller_that_cancels_cancels_the_worker_task() -> None:
    async def main() -> None:
        plane = FakePlane()
        server, link = await _pair(plane)
        task = asyncio.create_task(link.call(b"hang", None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if plane.cancelled:
                break
            await asyncio.sleep(0.01)
        assert plane.cancelled == 1
        link.close()
        await server.stop()

    asyncio.run(main())


def test_a_worker_that_goes_away_fails_its_requests_as_broken_calls() -> None:
    async def main() -> None:
        plane = FakePlane()
        server, link = await _pair(plane)
        task = asyncio.gather(link.call(b"hang", 10), link.call(b"hang", 10))
        await asyncio.sleep(0.05)
        await server.stop()  # the worker process ends
        outcomes = await asyncio.wait_for(task, 5)
        assert all(o.code is ErrorCode.UNAVAILABLE and o.transport for o in outcomes)
        # its replacement offers another socket: the link follows
        server2 = LocalServer(plane, 1 << 20)  # type: ignore[arg-type]
        link.offer(await server2.start())
        ok = await link.call(b"again", 5.0)
        assert ok is not None
        assert ok.payload == b"answer:again"
        link.close()
        await server2.stop()

    asyncio.run(main())


def test_an_unreachable_socket_means_grpc_for_a_while() -> None:
    async def main() -> None:
        link = LocalLink("worker:1", 1 << 20)
        link.offer(os.path.join(socket_dir() or "/nonexistent", "worker-1-00000000.sock"))
        assert link.usable
        assert await link.call(b"x", 1.0) is None
        assert not link.usable  # retried after RETRY_AFTER_S
        link.offer("")
        assert not link.usable

    asyncio.run(main())


def test_an_unreadable_frame_closes_the_connection() -> None:
    async def main() -> None:
        plane = FakePlane()
        server, _ = await _pair(plane)
        reader, writer = await asyncio.open_unix_connection(server.path)
        writer.write(REQUEST.pack(9, 1, 10, 0.0, 0) + b"0123456789")  # unknown kind
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
        reader, writer = await asyncio.open_unix_connection(server.path)
        writer.write(REQUEST.pack(1, 1, 1 << 30, 0.0, 0))  # a length over the limit
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert plane.seen == []
        await server.stop()

    asyncio.run(main())


def test_the_socket_directory_is_private() -> None:
    path = socket_dir()
    assert path is not None
    info = os.lstat(path)
    assert info.st_uid == os.getuid()
    assert info.st_mode & 0o077 == 0


def test_a_socket_outside_the_private_directory_is_never_connected_to(tmp_path) -> None:
    link = LocalLink("worker:1", 1 << 20)
    for path in (str(tmp_path / "worker-1-00ab.sock"), "/var/run/docker.sock",
                 os.path.join(socket_dir() or "", "../runnerfleet-x/worker-1-00ab.sock"),
                 os.path.join(socket_dir() or "", "other.sock")):  # fmt: skip
        link.offer(path)
        assert not link.usable
        assert link.path == ""
