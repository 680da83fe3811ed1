"""One inference request end to end in the worker: resolve, decode, validate, batch, encode.

Shared by ModelInfer, ModelStreamInfer and the internal ForwardBatch, so every path answers
alike. Counts the request by status code and observes its duration after it finished.
"""

from __future__ import annotations

import asyncio
import logging
import time

from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import Internal, InvalidArgument, RunnerFleetError
from protos.logformat import new_request_id, request_scope
from protos.shm import SharedMemoryRegistry
from protos.tracing import Tracing, parse_traceparent
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.metrics import WorkerMetrics
from runner_worker.validate import validate_inputs

__all__ = ["InferencePlane", "request_method", "request_deadline_s"]

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
    ) -> pb.ModelInferResponse:
        """Answer one request; raises RunnerFleetError subclasses on failure.

        ``traceparent`` (W3C, from the caller) makes the request's span its child; a value
        that does not parse is ignored.
        """
        span = None
        if self._tracing.enabled:
            span = self._tracing.start(
                "worker ModelInfer",
                traceparent=traceparent,
                kind="server",
                attributes={
                    "rpc.method": "ModelInfer",
                    "runnerfleet.model": request.model_name,
                    "runnerfleet.model_version": request.model_version,
                },
            )
            trace_id = self._tracing.trace_id(span)
            exemplar_id = trace_id if self._tracing.recording(span) else None
        else:
            parsed = parse_traceparent(traceparent)
            trace_id = parsed.trace_id if parsed is not None else None
            exemplar_id = None
        with request_scope(request.id or new_request_id(), trace_id):
            return await self._infer(request, deadline_s, span, exemplar_id)

    async def _infer(
        self,
        request: pb.ModelInferRequest,
        deadline_s: float | None,
        span: object,
        exemplar_id: str | None,
    ) -> pb.ModelInferResponse:
        start_s = time.perf_counter()
        hosted: HostedModel | None = None
        method = _UNKNOWN
        code = "OK"
        message = ""
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
                arrays, deadline_s=request_deadline_s(request, deadline_s), trace=span
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
            code, message = exc.code.value, exc.message
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:  # noqa: BLE001 - anything unexpected is INTERNAL, with its text
            code, message = "INTERNAL", f"{type(exc).__name__}: {exc}"
            raise Internal(message) from exc
        finally:
            duration_s = time.perf_counter() - start_s
            self._account(hosted, method, code, duration_s, exemplar_id)
            if self._tracing.recording(span):
                version = hosted.version if hosted is not None else request.model_version
                attributes = {"runnerfleet.method": method, "runnerfleet.model_version": version}
                self._tracing.end(span, status=code, message=message, attributes=attributes)
            _log_request(request, method, code, message, duration_s)

    def _account(
        self,
        hosted: HostedModel | None,
        method: str,
        code: str,
        duration_s: float,
        trace_id: str | None = None,
    ) -> None:
        if hosted is not None and method in hosted.metrics:
            hosted.metrics[method].on_request(code, duration_s, trace_id)
            hosted.stats.on_request(code == "OK", duration_s)
            return
        model = hosted.name if hosted is not None else _UNKNOWN
        self._metrics.requests.labels(model, _UNKNOWN, code).inc()
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
