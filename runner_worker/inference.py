"""One inference request end to end in the worker: resolve, decode, validate, batch, encode.

Shared by ModelInfer, ModelStreamInfer and the internal ForwardBatch, so every path answers
alike. Counts the request by status code and observes its duration after it finished.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import ErrorCode, Internal, InvalidArgument, RunnerFleetError
from protos.logformat import request_scope
from protos.ratelimited_log import BAD_REQUESTS
from protos.shm import SharedMemoryRegistry
from protos.tracing import Tracing
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.metrics import WorkerMetrics
from runner_worker.runner import MethodInfo
from runner_worker.validate import validate_inputs

__all__ = ["InferencePlane", "request_method", "request_deadline_s", "empty_outputs"]

_UNKNOWN = "(unknown)"
_log = logging.getLogger("runner_worker.requests")


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


def empty_outputs(info: MethodInfo, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
    """The outputs of a 0-row request to a batchable method, from the output spec.

    None when the request has rows (or the method is not batchable): run it. A 0-row request
    answers 0 rows of each output the signature recorded, without calling the model (a
    model's own answer to 0 rows is usually an exception: sklearn raises). A method saved
    without a sample has no output spec, so there is nothing to answer with:
    InvalidArgument.
    """
    if not info.batchable or not arrays:
        return None
    in_dim, out_dim = info.batch_dim
    first = arrays[0]
    if first.ndim == 0 or not -first.ndim <= in_dim < first.ndim or first.shape[in_dim] != 0:
        return None
    if not info.output_spec:
        raise InvalidArgument(
            f"method {info.name!r}: a request of 0 rows has nothing to run, and the method's "
            "output shapes are unknown (saved without a sample input); send at least one row"
        )
    outputs = []
    for spec in info.output_spec:
        shape = [0 if d < 0 else d for d in spec.shape]
        if shape:
            shape[out_dim % len(shape)] = 0
        outputs.append(np.empty(shape, dtype=np.dtype(spec.dtype)))
    return outputs


class InferencePlane:
    """Runs ModelInferRequests through the hosted models' batchers."""

    def __init__(
        self,
        host: ModelHost,
        metrics: WorkerMetrics,
        shm: SharedMemoryRegistry | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._host = host
        self._metrics = metrics
        self._shm = shm
        self._tracing = tracing or Tracing()

    async def infer(
        self,
        request: pb.ModelInferRequest,
        deadline_s: float | None = None,
        traceparent: str | None = None,
        *,
        protocol: str = "grpc",
    ) -> pb.ModelInferResponse:
        """Answer one request; raises RunnerFleetError subclasses on failure.

        ``traceparent`` (W3C, from the caller) makes the request's span its child; a value
        that does not parse is ignored. ``protocol`` names the front door it came in by (the
        metrics' ``protocol`` label).
        """
        response = await self._infer(request, None, deadline_s, traceparent, protocol, wire=False)
        assert isinstance(response, pb.ModelInferResponse)
        return response

    async def infer_wire(
        self,
        data: bytes,
        deadline_s: float | None = None,
        traceparent: str | None = None,
        *,
        protocol: str = "grpc",
    ) -> bytes:
        """``infer`` from a serialized request to a serialized response, copying tensors less.

        A big request's raw inputs are decoded from views over ``data`` and its outputs are
        serialized from views over the model's arrays (``codec.parse_infer_request_wire``,
        ``codec.encode_response_wire``): for a 4 MiB tensor, two copies instead of about
        nine. Unparseable bytes are InvalidArgument, with one rate-limited log line.
        """
        try:
            request, raws = codec.parse_infer_request_wire(data)
        except InvalidArgument as exc:
            BAD_REQUESTS.warning("refused ModelInfer: %d unparseable bytes", len(data))
            raise InvalidArgument(exc.message) from None
        response = await self._infer(request, raws, deadline_s, traceparent, protocol, wire=True)
        assert isinstance(response, bytes)
        return response

    async def _infer(
        self,
        request: pb.ModelInferRequest,
        raws: list[memoryview] | None,
        deadline_s: float | None,
        traceparent: str | None,
        protocol: str,
        *,
        wire: bool,
    ) -> pb.ModelInferResponse | bytes:
        """The one body of ``infer`` and ``infer_wire`` (``wire``: answer serialized bytes)."""
        attributes = None
        if self._tracing.enabled:
            attributes = {
                "rpc.method": "ModelInfer",
                "runnerfleet.model": request.model_name,
                "runnerfleet.model_version": request.model_version,
            }
        # sampled or not is decided here, once: an unsampled request has no span (None)
        trace = self._tracing.start_request("worker ModelInfer", traceparent, attributes=attributes)
        span = trace.span
        exemplar_id = None if span is None else trace.trace_id
        start_s = time.perf_counter()
        hosted: HostedModel | None = None
        method = _UNKNOWN
        code = "OK"
        message = ""
        # one frame per request (no inner coroutine): the scope's ids are made only if logged
        with request_scope(request.id, trace.trace_id):
            try:
                if not request.model_name:
                    raise InvalidArgument(codec.MODEL_NAME_REQUIRED)
                codec.check_request_limits(request)  # O(1) refusals before any lookup or decode
                hosted = self._host.get(request.model_name, request.model_version)
                method = request_method(request) or hosted.runner.default_method
                info = hosted.runner.method(method)
                try:
                    arrays = codec.decode_request_inputs(request, self._shm, limits=None, raws=raws)
                    validate_inputs(hosted.name, info, arrays)
                except InvalidArgument:
                    hosted.metrics[method].on_rejected("invalid_input")
                    raise
                empty = empty_outputs(info, arrays)
                if empty is not None:  # 0 rows to a batchable method: 0 rows back, no model call
                    outputs = empty
                else:
                    batcher = hosted.batchers[method]
                    outputs = await batcher.submit(
                        arrays, deadline_s=request_deadline_s(request, deadline_s), trace=span
                    )
                encode_start_s = time.perf_counter()
                names = info.output_names(len(outputs))
                response: pb.ModelInferResponse | bytes
                if wire:
                    response = codec.encode_response_wire(
                        request,
                        outputs,
                        names,
                        self._shm,
                        model_name=hosted.name,
                        model_version=hosted.version,
                    )
                else:
                    message_ = codec.encode_response(request, outputs, names, self._shm)
                    message_.model_name = hosted.name
                    message_.model_version = hosted.version
                    response = message_
                hosted.stats.compute_output.ns += int((time.perf_counter() - encode_start_s) * 1e9)
                return response
            except RunnerFleetError as exc:
                code, message = exc.code.value, exc.message
                if exc.code is ErrorCode.INVALID_ARGUMENT:
                    BAD_REQUESTS.warning("refused a request: %s", exc.message[:200])
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as exc:  # noqa: BLE001 - anything unexpected is INTERNAL, with its text
                code, message = "INTERNAL", f"{type(exc).__name__}: {exc}"
                raise Internal(message) from exc
            finally:
                duration_s = time.perf_counter() - start_s
                self._account(hosted, method, code, duration_s, exemplar_id, protocol)
                if span is not None:
                    version = hosted.version if hosted is not None else request.model_version
                    ended = {"runnerfleet.method": method, "runnerfleet.model_version": version}
                    self._tracing.end(span, status=code, message=message, attributes=ended)
                _log_request(request, method, code, message, duration_s)

    def _account(
        self,
        hosted: HostedModel | None,
        method: str,
        code: str,
        duration_s: float,
        trace_id: str | None,
        protocol: str,
    ) -> None:
        if hosted is not None and method in hosted.metrics:
            hosted.metrics[method].on_request(code, duration_s, trace_id, protocol)
            hosted.stats.on_request(code == "OK", duration_s)
            return
        model = hosted.name if hosted is not None else _UNKNOWN
        self._metrics.requests.labels(model, _UNKNOWN, code, protocol).inc()
        if hosted is not None:
            hosted.stats.on_request(False, duration_s)


def _log_request(
    request: pb.ModelInferRequest, method: str, code: str, message: str, duration_s: float
) -> None:
    """One line per request: DEBUG when it went well or was refused, WARNING when INTERNAL."""
    level = logging.WARNING if code == "INTERNAL" else logging.DEBUG
    if _log.isEnabledFor(level):
        _log.log(
            level,
            "ModelInfer model=%s version=%s method=%s code=%s duration_ms=%.2f%s",
            request.model_name,
            request.model_version or "-",
            method,
            code,
            duration_s * 1000,
            f" error={message}" if message else "",
        )
