"""The forward hop (retry policy): route a request's bytes to a worker, retry on another replica.

What is retried is decided by ``protos.errors.is_retryable`` alone (UNAVAILABLE from the
worker, or a call that failed in transport: connection refused or reset, worker killed
mid-call); a retry goes to a replica this request has not tried yet, while the client's
deadline lasts, at most `max_attempts` times in all. Everything else the worker says
(NOT_FOUND, INVALID_ARGUMENT, model errors, RESOURCE_EXHAUSTED) goes back as it is.
Transport-neutral: workers are reached through ``Worker.forward()``, outcomes carry ErrorCodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from api_gateway.coalescer import ForwardOutcome
from api_gateway.header import RequestHeader
from api_gateway.pool import Worker, WorkerPool
from api_gateway.router import choose_worker
from protos.errors import (
    DeadlineExceeded,
    ErrorCode,
    NotFound,
    ResourceExhausted,
    RunnerFleetError,
    Unavailable,
    error_for_code,
    is_retryable,
)
from protos.tracing import Tracing

__all__ = ["Forwarder"]


class Forwarder:
    """Sends model requests to workers chosen by the router, with bounded retries."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        max_inflight_per_worker: int,
        max_attempts: int,
        on_retry: Callable[[str], None] = lambda model: None,
        on_not_found: Callable[[Worker], None] = lambda worker: None,
        on_reject: Callable[[str], None] = lambda reason: None,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        self._pool = pool
        self._cap = max_inflight_per_worker
        self._max_attempts = max_attempts
        self._on_retry = on_retry
        self._on_not_found = on_not_found
        self._on_reject = on_reject

    async def forward(
        self,
        header: RequestHeader,
        request: bytes,
        deadline: float | None,
        *,
        span: object = None,
        traceparent: str = "",
    ) -> bytes:
        """The worker's serialized ModelInferResponse for `request`, or a RunnerFleetError.

        Each attempt is a `forward` span under `span` (the gateway's request span) whose W3C
        context goes to the worker; with tracing off, the client's `traceparent` goes as is.
        """
        tried: list[str] = []
        last: ForwardOutcome | None = None
        for _attempt in range(self._max_attempts):
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded("deadline passed before a worker answered")
            try:
                worker = choose_worker(
                    self._pool.workers,
                    header.model_name,
                    header.model_version,
                    max_inflight_per_worker=self._cap,
                    exclude=tried,
                )
            except ResourceExhausted:
                self._on_reject("overload")
                raise
            except NotFound:  # no worker hosts it: the client's mistake, not a rejection
                if last is not None:
                    break
                raise
            except Unavailable:  # hosted, but no replica is SERVING (or all were tried)
                if last is not None:
                    break
                self._on_reject("no_worker")
                raise
            if tried:
                self._on_retry(header.model_name)
            if span is None:
                outcome = await worker.forward(request, deadline, traceparent)
            else:
                outcome = await self._traced_forward(worker, request, deadline, span, len(tried))
            if outcome.code is None:
                return outcome.payload
            if not is_retryable(outcome.code, transport=outcome.transport):
                if outcome.code is ErrorCode.NOT_FOUND:
                    self._on_not_found(worker)
                raise _error(outcome.code, outcome)
            last = outcome
            tried.append(worker.address)
        assert last is not None
        raise Unavailable(
            f"no replica could serve the request ({len(tried)} tried): {last.message}"
        )

    async def _traced_forward(
        self, worker: Worker, request: bytes, deadline: float | None, span: object, attempt: int
    ) -> ForwardOutcome:
        tracing = self._tracing
        if not tracing.recording(span):  # not sampled: pass the decision on, record nothing
            return await worker.forward(request, deadline, tracing.traceparent(span) or "")
        hop = tracing.start(
            "forward",
            parent=span,
            kind="client",
            attributes={"runnerfleet.worker": worker.address, "runnerfleet.attempt": attempt},
        )
        outcome: ForwardOutcome | None = None
        try:
            outcome = await worker.forward(request, deadline, tracing.traceparent(hop) or "")
            return outcome
        finally:
            if outcome is None:
                tracing.end(hop, status="CANCELLED")
            else:
                code = "OK" if outcome.code is None else outcome.code.value
                tracing.end(hop, status=code, message=outcome.message)


def _error(code: ErrorCode, outcome: ForwardOutcome) -> RunnerFleetError:
    return error_for_code(code, outcome.message or code.value)
