"""One inference request end to end in the worker: resolve, decode, validate, batch, encode.

Shared by ModelInfer, ModelStreamInfer and the internal ForwardBatch, so every path answers
alike. Counts the request by status code and observes its duration after it finished.
"""

from __future__ import annotations

import asyncio
import time

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import Internal, InvalidArgument, RunnerFleetError
from protos.shm import SharedMemoryRegistry
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.metrics import WorkerMetrics
from runner_worker.validate import validate_inputs

__all__ = ["InferencePlane", "request_method", "request_deadline_s"]

_UNKNOWN = "(unknown)"


def request_method(request: pb.ModelInferRequest) -> str | None:
    """The ``method`` request parameter (a string), or None when absent."""
    if "method" not in request.parameters:
        return None
    param = request.parameters["method"]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise InvalidArgument("request parameter 'method' must be a string (string_param)")
    return param.string_param or None


def request_deadline_s(request: pb.ModelInferRequest, deadline_s: float | None) -> float | None:
    """The earlier of the transport deadline and the ``timeout`` parameter (microseconds)."""
    if "timeout" not in request.parameters:
        return deadline_s
    param = request.parameters["timeout"]
    choice = param.WhichOneof("parameter_choice")
    if choice not in ("int64_param", "uint64_param"):
        return deadline_s
    timeout_us = getattr(param, choice)
    if timeout_us <= 0:
        return deadline_s
    own = time.monotonic() + timeout_us / 1e6
    return own if deadline_s is None else min(own, deadline_s)


class InferencePlane:
    """Runs ModelInferRequests through the hosted models' batchers."""

    def __init__(
        self, host: ModelHost, metrics: WorkerMetrics, shm: SharedMemoryRegistry | None = None
    ) -> None:
        self._host = host
        self._metrics = metrics
        self._shm = shm

    async def infer(
        self, request: pb.ModelInferRequest, deadline_s: float | None = None
    ) -> pb.ModelInferResponse:
        """Answer one request; raises RunnerFleetError subclasses on failure."""
        start_s = time.perf_counter()
        hosted: HostedModel | None = None
        method = _UNKNOWN
        code = "OK"
        try:
            hosted = self._host.get(request.model_name, request.model_version)
            method = request_method(request) or hosted.runner.default_method
            info = hosted.runner.method(method)
            where = f"model {hosted.name!r} method {method!r}"
            try:
                arrays = codec.decode_request_inputs(request, self._shm)
                validate_inputs(where, info, arrays)
            except InvalidArgument:
                hosted.metrics[method].on_rejected("invalid_input")
                raise
            batcher = hosted.batchers[method]
            outputs = await batcher.submit(
                arrays, deadline_s=request_deadline_s(request, deadline_s)
            )
            encode_start_s = time.perf_counter()
            response = codec.encode_response(
                request, outputs, info.output_names(len(outputs)), self._shm
            )
            response.model_name = hosted.name
            response.model_version = hosted.version
            hosted.stats.compute_output.ns += int((time.perf_counter() - encode_start_s) * 1e9)
            return response
        except RunnerFleetError as exc:
            code = exc.code.value
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:  # noqa: BLE001 - anything unexpected is INTERNAL, with its text
            code = "INTERNAL"
            raise Internal(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._account(hosted, method, code, time.perf_counter() - start_s)

    def _account(
        self, hosted: HostedModel | None, method: str, code: str, duration_s: float
    ) -> None:
        if hosted is not None and method in hosted.metrics:
            hosted.metrics[method].on_request(code, duration_s)
            hosted.stats.on_request(code == "OK", duration_s)
            return
        model = hosted.name if hosted is not None else _UNKNOWN
        self._metrics.requests.labels(model, _UNKNOWN, code).inc()
        if hosted is not None:
            hosted.stats.on_request(False, duration_s)
