"""runnerfleet.client without a server: retries, deadlines, unreachable servers, settings.

Calls against a live worker are in tests/integration/test_client_worker.py.
"""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

from protos.errors import DeadlineExceeded, InvalidArgument, Unavailable
from runnerfleet import client as client_mod
from runnerfleet.client import MAX_MESSAGE_BYTES, AsyncClient, Client


@pytest.fixture
def dead_address() -> str:
    """An address nothing listens on (a port the OS just handed out and we released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_unreachable_server_raises_unavailable_after_retries(dead_address, monkeypatch):
    attempts = []
    real_backoff = client_mod._backoff_s
    monkeypatch.setattr(client_mod, "_backoff_s", lambda a: attempts.append(a) or real_backoff(a))
    with (
        Client(dead_address, retries=3, timeout_s=10, reconnect_wait_s=0.1) as client,
        pytest.raises(Unavailable),
    ):
        client.infer("iris_clf", np.zeros((1, 4)))
    assert attempts == [0, 1, 2]  # three retries after the first attempt


def test_no_retries_when_zero(dead_address, monkeypatch):
    monkeypatch.setattr(client_mod, "_backoff_s", lambda a: pytest.fail("retried"))
    with Client(dead_address, retries=0) as client, pytest.raises(Unavailable):
        client.model_metadata("iris_clf")


def test_retries_stop_at_the_deadline(dead_address):
    with Client(dead_address, retries=1000, timeout_s=0.5) as client:
        start_s = time.monotonic()
        with pytest.raises((Unavailable, DeadlineExceeded)):
            client.model_config("iris_clf")
        assert time.monotonic() - start_s < 2.0


def test_readiness_is_false_when_unreachable(dead_address):
    with Client(dead_address, retries=0) as client:
        assert client.is_server_live() is False
        assert client.is_server_ready() is False
        assert client.is_model_ready("iris_clf") is False


def test_async_client_unreachable(dead_address):
    async def main():
        async with AsyncClient(
            dead_address, retries=1, timeout_s=5, reconnect_wait_s=0.1
        ) as client:
            assert await client.is_server_ready() is False
            with pytest.raises(Unavailable):
                await client.infer("iris_clf", np.zeros((1, 4)))

    asyncio.run(main())


def test_bad_input_fails_before_sending(dead_address):
    with Client(dead_address) as client, pytest.raises(InvalidArgument, match="complex"):
        client.infer("m", np.zeros(2, dtype=np.complex64))


def test_settings():
    with Client("127.0.0.1:1", token="s3cret", retries=0) as client:
        assert client._metadata == (("authorization", "Bearer s3cret"),)
        assert ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES) in client._options
        assert ("grpc.max_send_message_length", MAX_MESSAGE_BYTES) in client._options
        assert client._credentials is None
    with Client("127.0.0.1:1", tls=True) as client:
        assert client._credentials is not None
    with pytest.raises(ValueError, match="retries"):
        Client("127.0.0.1:1", retries=-1)


def test_backoff_is_small_and_bounded():
    for attempt in range(20):
        assert 0 <= client_mod._backoff_s(attempt) <= 1.0
    assert max(client_mod._backoff_s(0) for _ in range(100)) <= 0.05


def test_addresses_are_split_and_each_gets_a_channel(dead_address):
    with Client(f"{dead_address}, 127.0.0.1:1") as client:
        assert client.addresses == [dead_address, "127.0.0.1:1"]
        assert len(client._stubs) == 2
    with Client([dead_address]) as client:
        assert client.addresses == [dead_address]
    with pytest.raises(ValueError, match="at least one"):
        Client(" , ")


def test_every_address_is_tried_before_a_backoff(dead_address, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        other = f"127.0.0.1:{sock.getsockname()[1]}"
    sleeps: list[float] = []
    monkeypatch.setattr(client_mod.time, "sleep", sleeps.append)
    with (
        Client([dead_address, other], retries=1, timeout_s=10, reconnect_wait_s=0.1) as client,
        pytest.raises(Unavailable),
    ):
        client.infer("m", np.zeros((1, 2), dtype=np.float32))
    assert len(sleeps) == 1  # two addresses, then one backoff, then both again
