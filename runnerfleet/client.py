"""A small gRPC client for RunnerFleet (any Open Inference Protocol server): sync and asyncio.

``Client("host:8001").infer("iris_clf", x)`` returns the output array (a tuple when the model has
several). Output arrays are decoded zero-copy and are read-only; copy before writing in place.
Calls that fail with UNAVAILABLE are retried ``retries`` times with a small backoff, always
within ``timeout_s`` (one deadline for all attempts); every failure is raised as a
``protos.errors`` class (``NotFound``, ``InvalidArgument``, ``Unavailable``...).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.errors import DeadlineExceeded, NotFound, Unavailable
from protos.status import RETRYABLE_CODES, error_from_rpc_error

_MIN_TIMEOUT_S = 1e-3  # below this a deadline is treated as already passed

__all__ = ["Client", "AsyncClient", "MAX_MESSAGE_BYTES"]

MAX_MESSAGE_BYTES = 2**31 - 1  # as tritonclient: the largest message gRPC allows
_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 1.0


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def _credentials(tls: bool, root_certificates: bytes | str | Path | None) -> Any:
    if root_certificates is None and not tls:
        return None
    root = root_certificates
    if isinstance(root, str | Path):
        root = Path(root).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=root)


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
        address: str,
        *,
        timeout_s: float | None = None,
        retries: int = 2,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        token: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.address = address
        self.timeout_s = timeout_s
        self.retries = retries
        self._credentials = _credentials(tls, root_certificates)
        self._options = _channel_options(max_message_bytes)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if self._credentials is None:
            self._channel = self._grpc.insecure_channel(address, options=self._options)
        else:
            self._channel = self._grpc.secure_channel(
                address, self._credentials, options=self._options
            )
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

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
    """Blocking client; one HTTP/2 channel, safe to share between threads."""

    def _call(self, rpc: Callable[..., Any], request: Any, timeout_s: float | None = None) -> Any:
        deadline = self._deadline(timeout_s)
        attempt = 0
        while True:
            try:
                return rpc(request, timeout=self._remaining_s(deadline), metadata=self._metadata)
            except grpc.RpcError as error:
                time.sleep(self._next_attempt(error, attempt, deadline))
                attempt += 1

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
        return _outputs(self._call(self._stub.ModelInfer, request, timeout_s))

    def infer_request(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a prepared ModelInferRequest; the raw ModelInferResponse comes back."""
        return self._call(self._stub.ModelInfer, request, timeout_s)

    def model_metadata(self, model: str, version: str = "") -> Any:
        """The ModelMetadataResponse (inputs/outputs of the default method)."""
        return self._call(
            self._stub.ModelMetadata, pb.ModelMetadataRequest(name=model, version=version)
        )

    def model_config(self, model: str, version: str = "") -> Any:
        """The ModelConfigResponse (the synthesised Triton model configuration)."""
        return self._call(
            self._stub.ModelConfig, pb.ModelConfigRequest(name=model, version=version)
        )

    def is_server_live(self) -> bool:
        """True when the server answers ServerLive; False when it cannot be reached."""
        try:
            return bool(self._call(self._stub.ServerLive, pb.ServerLiveRequest()).live)
        except Unavailable:
            return False

    def is_server_ready(self) -> bool:
        """True when the server can serve its models; False when not (or unreachable)."""
        try:
            return bool(self._call(self._stub.ServerReady, pb.ServerReadyRequest()).ready)
        except Unavailable:
            return False

    def is_model_ready(self, model: str, version: str = "") -> bool:
        """True when ``model`` (``version``) can serve; False when not, unknown or unreachable."""
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return bool(self._call(self._stub.ModelReady, request).ready)
        except (Unavailable, NotFound):
            return False

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client (grpc.aio) with the same surface as Client; create it inside a loop."""

    _grpc = grpc.aio

    async def _call(
        self, rpc: Callable[..., Any], request: Any, timeout_s: float | None = None
    ) -> Any:
        deadline = self._deadline(timeout_s)
        attempt = 0
        while True:
            try:
                return await rpc(
                    request, timeout=self._remaining_s(deadline), metadata=self._metadata
                )
            except grpc.RpcError as error:
                await asyncio.sleep(self._next_attempt(error, attempt, deadline))
                attempt += 1

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
        return _outputs(await self._call(self._stub.ModelInfer, request, timeout_s))

    async def infer_request(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a prepared ModelInferRequest; the raw ModelInferResponse comes back."""
        return await self._call(self._stub.ModelInfer, request, timeout_s)

    async def model_metadata(self, model: str, version: str = "") -> Any:
        """The ModelMetadataResponse (inputs/outputs of the default method)."""
        request = pb.ModelMetadataRequest(name=model, version=version)
        return await self._call(self._stub.ModelMetadata, request)

    async def model_config(self, model: str, version: str = "") -> Any:
        """The ModelConfigResponse (the synthesised Triton model configuration)."""
        request = pb.ModelConfigRequest(name=model, version=version)
        return await self._call(self._stub.ModelConfig, request)

    async def is_server_live(self) -> bool:
        """True when the server answers ServerLive; False when it cannot be reached."""
        try:
            return bool((await self._call(self._stub.ServerLive, pb.ServerLiveRequest())).live)
        except Unavailable:
            return False

    async def is_server_ready(self) -> bool:
        """True when the server can serve its models; False when not (or unreachable)."""
        try:
            return bool((await self._call(self._stub.ServerReady, pb.ServerReadyRequest())).ready)
        except Unavailable:
            return False

    async def is_model_ready(self, model: str, version: str = "") -> bool:
        """True when ``model`` (``version``) can serve; False when not, unknown or unreachable."""
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return bool((await self._call(self._stub.ModelReady, request)).ready)
        except (Unavailable, NotFound):
            return False

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
