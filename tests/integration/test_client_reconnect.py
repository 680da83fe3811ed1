"""runnerfleet.client finds a gateway that comes back while a call is retrying.

A channel whose server refused a connection fails calls at once until its next reconnect
attempt; these tests start a real gRPC server on a port the client already failed on, part
way through a call, and count the calls that still fail. The server is a minimal Open
Inference Protocol servicer in this process (ServerLive only), so the test is about the
client's channels, not the gateway.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.errors import Unavailable
from runnerfleet.client import AsyncClient, Client


class _Live(pb_grpc.GRPCInferenceServiceServicer):
    def ServerLive(self, request, context):  # noqa: N802 (the protocol's name)
        return pb.ServerLiveResponse(live=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _LateServer:
    """A server on ``port`` that starts ``after_s`` seconds after start() is called."""

    def __init__(self, port: int, after_s: float) -> None:
        self.port, self.after_s = port, after_s
        self.server: grpc.Server | None = None
        self._timer = threading.Timer(after_s, self._serve)

    def _serve(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Live(), server)
        assert server.add_insecure_port(f"127.0.0.1:{self.port}") == self.port
        server.start()
        self.server = server

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join()
        if self.server is not None:
            self.server.stop(grace=None)


@pytest.fixture
def late_server() -> Iterator[Callable[[int, float], _LateServer]]:
    servers: list[_LateServer] = []

    def make(port: int, after_s: float) -> _LateServer:
        servers.append(_LateServer(port, after_s))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def _refuse_a_few_times(client: Client, n: int = 3) -> None:
    """Put the channels into reconnect backoff, as a gateway restart does to its clients."""
    retries, client.retries = client.retries, 0
    for _ in range(n):
        assert client.is_server_live() is False
    client.retries = retries


def test_a_call_retrying_on_a_refused_address_finds_the_server_when_it_returns(late_server):
    port = _free_port()
    with Client(f"127.0.0.1:{port}", retries=2, timeout_s=10) as client:
        _refuse_a_few_times(client)
        server = late_server(port, after_s=0.4)
        server.start()
        failed = 0
        for _ in range(5):
            try:
                assert client.is_server_live() is True
            except AssertionError:
                failed += 1
        assert failed == 0


def test_failover_waits_for_the_restarted_address_when_the_other_is_down(late_server):
    """Gateway A came back a moment ago (its channel still in backoff), gateway B is down."""
    port_a, port_b = _free_port(), _free_port()
    with Client([f"127.0.0.1:{port_b}", f"127.0.0.1:{port_a}"], retries=2, timeout_s=10) as client:
        _refuse_a_few_times(client)
        late_server(port_a, after_s=0.3).start()
        response = client._call("ServerLive", pb.ServerLiveRequest())
        assert response.live is True
        assert client.addresses[client._current] == f"127.0.0.1:{port_a}"


def test_async_client_waits_for_a_reconnect(late_server):
    port = _free_port()

    async def main() -> bool:
        async with AsyncClient(f"127.0.0.1:{port}", retries=2, timeout_s=10) as client:
            client.retries = 0
            for _ in range(3):
                assert await client.is_server_live() is False
            client.retries = 2
            late_server(port, after_s=0.4).start()
            return await client.is_server_live()

    assert asyncio.run(main()) is True


def test_an_unreachable_address_still_raises_unavailable_within_the_wait_budget():
    port = _free_port()
    with Client(f"127.0.0.1:{port}", retries=2, timeout_s=30, reconnect_wait_s=0.2) as client:
        start_s = time.monotonic()
        with pytest.raises(Unavailable):
            client._call("ServerLive", pb.ServerLiveRequest())
        # two rounds of at most 0.2 s plus backoff, far from the 30 s deadline
        assert time.monotonic() - start_s < 10


def test_reconnect_wait_is_validated():
    with pytest.raises(ValueError, match="reconnect_wait_s"):
        Client("127.0.0.1:1", reconnect_wait_s=-1)
