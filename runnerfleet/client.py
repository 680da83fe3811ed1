"""A small gRPC client for RunnerFleet (any Open Inference Protocol server): sync and asyncio.

``Client("host:8001").infer("iris_clf", x)`` returns the output array (a tuple when the model has
several). Output arrays are decoded zero-copy and are read-only; copy before writing in place.

Failover: the address may list several gateways (``"gw1:8001,gw2:8001"`` or a sequence), one
channel each. A call that fails with a retryable code (``protos.status.RETRYABLE_CODES``:
UNAVAILABLE, which is also what a refused or broken connection and a draining gateway give) is
sent at once to the next address not tried by this call; when every address has failed, the
retry rule below applies and the next round starts at the next address. The address that
answered last is used first, so a gateway restart costs each client one failed attempt. A DNS
name that resolves to several addresses is one channel, and gRPC's own pick-first tries those
addresses in turn when a connection fails.

Retries: after every address failed, calls are retried ``retries`` times with a small jittered
backoff, always within ``timeout_s`` (one deadline for all attempts); every failure is raised
as a ``protos.errors`` class (``NotFound``, ``InvalidArgument``, ``Unavailable``...).

Reconnects: a channel whose gateway refused a connection fails every call at once until its
next connection attempt (at most ``protos.channel_options.MAX_RECONNECT_BACKOFF_MS`` later), so
a retry that only slept its backoff would fail on a gateway that is already back. Before each
retry round the client therefore waits, after the backoff, until one of its channels is READY,
for at most ``reconnect_wait_s`` (1.5 s: one reconnect period, its 20% jitter and a connect)
and never past the deadline, and starts the round at that channel. A channel that is READY
already (a gateway that answered UNAVAILABLE while draining) costs no wait. When no channel
connects in time the round runs anyway, and an unreachable cluster still raises
``Unavailable``, after about ``retries * reconnect_wait_s``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.channel_options import FAST_RECONNECT, MAX_RECONNECT_BACKOFF_MS
from protos.errors import DeadlineExceeded, NotFound, Unavailable
from protos.status import RETRYABLE_CODES, error_from_rpc_error

_MIN_TIMEOUT_S = 1e-3  # below this a deadline is treated as already passed

__all__ = ["Client", "AsyncClient", "MAX_MESSAGE_BYTES", "RECONNECT_WAIT_S"]

MAX_MESSAGE_BYTES = 2**31 - 1  # as tritonclient: the largest message gRPC allows
_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 1.0
# one reconnect period (gRPC jitters it by up to 20%) and a connect on a cluster network
RECONNECT_WAIT_S = 1.2 * MAX_RECONNECT_BACKOFF_MS / 1000 + 0.3


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Message limits, and reconnects fast enough that failover finds a restarted gateway."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        *FAST_RECONNECT,
    ]


def _credentials(tls: bool, root_certificates: bytes | str | Path | None) -> Any:
    if root_certificates is None and not tls:
        return None
    root = root_certificates
    if isinstance(root, str | Path):
        root = Path(root).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=root)


def _split_addresses(address: str | Sequence[str]) -> list[str]:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` -> ``["a:1", "b:2"]``; at least one address."""
    items = address.split(",") if isinstance(address, str) else list(address)
    addresses = [a.strip() for a in items if a.strip()]
    if not addresses:
        raise ValueError("give at least one gateway address (HOST:PORT)")
    return addresses


def _backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff: 50 ms, 100 ms, 200 ms ... capped at 1 s."""
    return random.uniform(0, min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2**attempt))


def _outputs(response: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    arrays = codec.decode_response_outputs(response)
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


class _Base:
    """Settings, channel and request building shared by Client and AsyncClient."""

    _grpc: Any = grpc  # the channel factories: grpc (blocking) or grpc.aio (asyncio)

    def __init__(
        self,
        address: str | Sequence[str],
        *,
        timeout_s: float | None = None,
        retries: int = 2,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        token: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        reconnect_wait_s: float = RECONNECT_WAIT_S,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if reconnect_wait_s < 0:
            raise ValueError(f"reconnect_wait_s must be >= 0, got {reconnect_wait_s}")
        self.reconnect_wait_s = reconnect_wait_s
        self.addresses = _split_addresses(address)
        self.address = self.addresses[0]
        self.timeout_s = timeout_s
        self.retries = retries
        self._credentials = _credentials(tls, root_certificates)
        self._options = _channel_options(max_message_bytes)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._channels = [self._open(a) for a in self.addresses]
        self._stubs = [pb_grpc.GRPCInferenceServiceStub(c) for c in self._channels]
        self._current = 0  # the address that answered last

    def _open(self, address: str) -> Any:
        if self._credentials is None:
            return self._grpc.insecure_channel(address, options=self._options)
        return self._grpc.secure_channel(address, self._credentials, options=self._options)

    @property
    def _channel(self) -> Any:
        return self._channels[self._current]

    @property
    def _stub(self) -> Any:
        """The stub of the address in use now (the one that answered last)."""
        return self._stubs[self._current]

    def _fail_over(self, error: grpc.RpcError, failovers: int, deadline: float | None) -> bool:
        """Move to the next address; True when it is one this call has not tried yet."""
        if error.code() not in RETRYABLE_CODES or len(self._stubs) == 1:
            return False
        self._current = (self._current + 1) % len(self._stubs)
        if deadline is not None and deadline - time.monotonic() < _MIN_TIMEOUT_S:
            return False
        return failovers < len(self._stubs) - 1

    def _deadline(self, timeout_s: float | None) -> float | None:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        return None if timeout_s is None else time.monotonic() + timeout_s

    def _next_attempt(self, error: grpc.RpcError, attempt: int, deadline: float | None) -> float:
        """Seconds to wait before retrying ``error``; raises it as a RunnerFleetError if not."""
        if error.code() not in RETRYABLE_CODES or attempt >= self.retries:
            raise error_from_rpc_error(error) from None
        wait_s = _backoff_s(attempt)
        if deadline is not None and time.monotonic() + wait_s >= deadline:
            raise error_from_rpc_error(error) from None
        return wait_s

    def _reconnect_budget_s(self, deadline: float | None) -> float:
        """How long a retry round may wait for a channel to connect: never past the deadline."""
        if deadline is None:
            return self.reconnect_wait_s
        return min(self.reconnect_wait_s, deadline - time.monotonic() - _MIN_TIMEOUT_S)

    @staticmethod
    def _remaining_s(deadline: float | None) -> float | None:
        """Seconds left before ``deadline``; raises when under _MIN_TIMEOUT_S is left.

        grpc Python runs a call with timeout 0, or a sub-microsecond one, with no deadline at
        all, and no remote call completes in under a millisecond anyway.
        """
        if deadline is None:
            return None
        remaining_s = deadline - time.monotonic()
        if remaining_s < _MIN_TIMEOUT_S:
            raise DeadlineExceeded("deadline exceeded before the call could be sent")
        return remaining_s

    @staticmethod
    def _infer_request(
        model: str,
        arrays: Sequence[Any],
        method: str | None,
        version: str,
        input_names: Sequence[str] | None,
        request_id: str,
    ) -> Any:
        return codec.encode_request(
            model,
            arrays,
            model_version=version,
            method=method,
            input_names=input_names,
            request_id=request_id,
        )


class Client(_Base):
    """Blocking client; one HTTP/2 channel per address, safe to share between threads."""

    def _call(self, rpc_name: str, request: Any, timeout_s: float | None = None) -> Any:
        deadline = self._deadline(timeout_s)
        attempt = failovers = 0
        while True:
            rpc: Callable[..., Any] = getattr(self._stub, rpc_name)
            try:
                return rpc(request, timeout=self._remaining_s(deadline), metadata=self._metadata)
            except grpc.RpcError as error:
                if self._fail_over(error, failovers, deadline):
                    failovers += 1
                    continue
                time.sleep(self._next_attempt(error, attempt, deadline))
                self._wait_for_a_ready_channel(self._reconnect_budget_s(deadline))
                attempt, failovers = attempt + 1, 0

    def _wait_for_a_ready_channel(self, budget_s: float) -> None:
        """Wait up to ``budget_s`` for any channel to be READY, and make it the current one."""
        if budget_s <= 0:
            return
        ready = threading.Event()
        winners: list[int] = []

        def on_done(future: Any, index: int) -> None:
            if not future.cancelled():
                winners.append(index)
                ready.set()

        futures = [grpc.channel_ready_future(channel) for channel in self._channels]
        for index, future in enumerate(futures):
            future.add_done_callback(lambda f, i=index: on_done(f, i))
        ready.wait(budget_s)
        for future in futures:
            future.cancel()
        if winners:
            self._current = winners[0]

    def infer(
        self,
        model: str,
        *arrays: Any,
        method: str | None = None,
        version: str = "",
        input_names: Sequence[str] | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run ``model`` on ``arrays``: one output as an array, several as a tuple."""
        request = self._infer_request(model, arrays, method, version, input_names, request_id)
        return _outputs(self._call("ModelInfer", request, timeout_s))

    def infer_request(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a prepared ModelInferRequest; the raw ModelInferResponse comes back."""
        return self._call("ModelInfer", request, timeout_s)

    def model_metadata(self, model: str, version: str = "") -> Any:
        """The ModelMetadataResponse (inputs/outputs of the default method)."""
        return self._call("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version))

    def model_config(self, model: str, version: str = "") -> Any:
        """The ModelConfigResponse (the synthesised Triton model configuration)."""
        return self._call("ModelConfig", pb.ModelConfigRequest(name=model, version=version))

    def is_server_live(self) -> bool:
        """True when the server answers ServerLive; False when it cannot be reached."""
        try:
            return bool(self._call("ServerLive", pb.ServerLiveRequest()).live)
        except Unavailable:
            return False

    def is_server_ready(self) -> bool:
        """True when the server can serve its models; False when not (or unreachable)."""
        try:
            return bool(self._call("ServerReady", pb.ServerReadyRequest()).ready)
        except Unavailable:
            return False

    def is_model_ready(self, model: str, version: str = "") -> bool:
        """True when ``model`` (``version``) can serve; False when not, unknown or unreachable."""
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return bool(self._call("ModelReady", request).ready)
        except (Unavailable, NotFound):
            return False

    def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client (grpc.aio) with the same surface as Client; create it inside a loop."""

    _grpc = grpc.aio

    async def _call(self, rpc_name: str, request: Any, timeout_s: float | None = None) -> Any:
        deadline = self._deadline(timeout_s)
        attempt = failovers = 0
        while True:
            rpc: Callable[..., Any] = getattr(self._stub, rpc_name)
            try:
                return await rpc(
                    request, timeout=self._remaining_s(deadline), metadata=self._metadata
                )
            except grpc.RpcError as error:
                if self._fail_over(error, failovers, deadline):
                    failovers += 1
                    continue
                await asyncio.sleep(self._next_attempt(error, attempt, deadline))
                await self._wait_for_a_ready_channel(self._reconnect_budget_s(deadline))
                attempt, failovers = attempt + 1, 0

    async def _wait_for_a_ready_channel(self, budget_s: float) -> None:
        """Wait up to ``budget_s`` for any channel to be READY, and make it the current one."""
        if budget_s <= 0:
            return
        waits = [asyncio.ensure_future(channel.channel_ready()) for channel in self._channels]
        done, pending = await asyncio.wait(
            waits, timeout=budget_s, return_when=asyncio.FIRST_COMPLETED
        )
        for wait in pending:
            wait.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for index, wait in enumerate(waits):
            if wait in done and not wait.cancelled() and wait.exception() is None:
                self._current = index
                return

    async def infer(
        self,
        model: str,
        *arrays: Any,
        method: str | None = None,
        version: str = "",
        input_names: Sequence[str] | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run ``model`` on ``arrays``: one output as an array, several as a tuple."""
        request = self._infer_request(model, arrays, method, version, input_names, request_id)
        return _outputs(await self._call("ModelInfer", request, timeout_s))

    async def infer_request(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a prepared ModelInferRequest; the raw ModelInferResponse comes back."""
        return await self._call("ModelInfer", request, timeout_s)

    async def model_metadata(self, model: str, version: str = "") -> Any:
        """The ModelMetadataResponse (inputs/outputs of the default method)."""
        request = pb.ModelMetadataRequest(name=model, version=version)
        return await self._call("ModelMetadata", request)

    async def model_config(self, model: str, version: str = "") -> Any:
        """The ModelConfigResponse (the synthesised Triton model configuration)."""
        request = pb.ModelConfigRequest(name=model, version=version)
        return await self._call("ModelConfig", request)

    async def is_server_live(self) -> bool:
        """True when the server answers ServerLive; False when it cannot be reached."""
        try:
            return bool((await self._call("ServerLive", pb.ServerLiveRequest())).live)
        except Unavailable:
            return False

    async def is_server_ready(self) -> bool:
        """True when the server can serve its models; False when not (or unreachable)."""
        try:
            return bool((await self._call("ServerReady", pb.ServerReadyRequest())).ready)
        except Unavailable:
            return False

    async def is_model_ready(self, model: str, version: str = "") -> bool:
        """True when ``model`` (``version``) can serve; False when not, unknown or unreachable."""
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return bool((await self._call("ModelReady", request)).ready)
        except (Unavailable, NotFound):
            return False

    async def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
