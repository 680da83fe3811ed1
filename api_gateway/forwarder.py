"""The forward hop (retry policy): route a request's bytes to a worker, hedge, retry elsewhere.

What is retried is decided by ``protos.errors.is_retryable`` alone (UNAVAILABLE from the
worker, or a call that failed in transport: connection refused or reset, worker killed
mid-call, a worker that stopped answering its health checks); a retry goes to a replica this
request has not tried yet, while the client's deadline lasts, at most `max_attempts` times in
all. Everything else the worker says (NOT_FOUND, INVALID_ARGUMENT, model errors,
RESOURCE_EXHAUSTED) goes back as it is.

Each attempt may be hedged (``api_gateway/hedging.py``): still unanswered after the model's
recent p95, it is sent once more to another replica if the deadline and the hedge budget
allow; the first answer wins and the other call is cancelled. An attempt on a model no other
worker hosts has nowhere to hedge to and is awaited plainly (no timer, no wait over futures).
Every finished or abandoned forward is reported to the outlier detector
(``api_gateway/outlier.py``), which ejects workers whose forwards keep failing or keep running
far past their usual latency.

A request that finds no routable replica (workers still being described, restarting, all
out of rotation) waits for the pool to change, bounded by its deadline and `route_wait_s`,
instead of failing at once. Transport-neutral: workers are reached through
``Worker.forward()``, outcomes carry ErrorCodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import NamedTuple

from api_gateway.coalescer import ForwardOutcome
from api_gateway.header import RequestHeader
from api_gateway.hedging import Hedger
from api_gateway.outlier import OutlierDetector
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

__all__ = ["Forwarder", "is_worker_fault"]

# what a worker did wrong, as opposed to what it answered on purpose
_FAULT_CODES = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED})


def is_worker_fault(outcome: ForwardOutcome) -> bool:
    """Whether a failed forward counts against its worker (the outlier detector's input)."""
    return outcome.code is not None and (outcome.transport or outcome.code in _FAULT_CODES)


class Forwarder:
    """Sends model requests to workers chosen by the router, with hedges and bounded retries."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        max_inflight_per_worker: int,
        max_attempts: int,
        outliers: OutlierDetector | None = None,
        hedger: Hedger | None = None,
        route_wait_s: float = 0.0,
        on_retry: Callable[[str], None] = lambda model: None,
        on_hedge: Callable[[str], None] = lambda model: None,
        on_not_found: Callable[[Worker], None] = lambda worker: None,
        on_reject: Callable[[str], None] = lambda reason: None,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        self._pool = pool
        self._cap = max_inflight_per_worker
        self._max_attempts = max_attempts
        self._outliers = outliers
        self._hedger = hedger
        self._route_wait_s = route_wait_s
        self._on_retry = on_retry
        self._on_hedge = on_hedge
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

        Each attempt (and hedge) is a `forward` span under `span` (the gateway's request span)
        whose W3C context goes to the worker; with tracing off, the client's `traceparent` goes
        as is.
        """
        if self._hedger is not None:
            self._hedger.on_request()
        tried: list[str] = []
        last: ForwardOutcome | None = None
        attempts = 0
        started_s = time.monotonic()
        trace = _Trace(span, traceparent)
        while attempts < self._max_attempts:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded("deadline passed before a worker answered")
            try:
                worker = self._choose(header, tried)
            except ResourceExhausted:
                self._on_reject("overload")
                raise
            except NotFound:  # no worker hosts it: the client's mistake, not a rejection
                if last is not None:
                    break
                raise
            except Unavailable:  # hosted, but no replica is routable (or all were tried)
                if last is not None:
                    break
                if await self._wait_for_pool(deadline, started_s + self._route_wait_s):
                    continue
                self._on_reject("no_worker")
                raise
            if tried:
                self._on_retry(header.model_name)
            attempts += 1
            delay_s = self._hedge_delay_s(worker, header, tried)
            sent_s = time.monotonic()
            call = self._call(worker, request, deadline, trace, len(tried))
            tried.append(worker.address)
            if delay_s is None:  # nothing to hedge (or nowhere to): one call, no timer
                outcome = await call  # cancelling the caller cancels the call (and its worker's)
                self._settle(worker, outcome, time.monotonic() - sent_s, header.model_name)
            else:
                outcome = await self._hedged(
                    worker, call, sent_s, delay_s, header, request, deadline, tried, trace
                )
            if outcome.code is None:
                return outcome.payload
            if not is_retryable(outcome.code, transport=outcome.transport):
                raise _error(outcome.code, outcome)
            last = outcome
        assert last is not None
        raise Unavailable(
            f"no replica could serve the request ({len(tried)} tried): {last.message}"
        )

    def _choose(self, header: RequestHeader, tried: list[str]) -> Worker:
        return choose_worker(
            self._pool.workers,
            header.model_name,
            header.model_version,
            max_inflight_per_worker=self._cap,
            exclude=tried,
        )

    async def _wait_for_pool(self, deadline: float | None, wait_until_s: float) -> bool:
        """Wait for the pool to change, until the deadline or `wait_until_s`; False: give up."""
        until_s = wait_until_s if deadline is None else min(deadline, wait_until_s)
        remaining_s = until_s - time.monotonic()
        if remaining_s <= 0:
            return False
        await self._pool.wait_change(remaining_s)
        return True

    async def _hedged(
        self,
        first: Worker,
        call: Awaitable[ForwardOutcome],
        started_s: float,
        delay_s: float,
        header: RequestHeader,
        request: bytes,
        deadline: float | None,
        tried: list[str],
        trace: _Trace,
    ) -> ForwardOutcome:
        """The attempt `call` on `first` (sent at `started_s`), hedged to another replica if
        it runs past `delay_s`."""
        model = header.model_name
        calls: dict[asyncio.Future[ForwardOutcome], tuple[Worker, float]] = {
            _future(call): (first, started_s)
        }
        hedge_at_s: float | None = started_s + delay_s
        answered = False
        try:
            while True:
                timeout_s = None if hedge_at_s is None else max(hedge_at_s - time.monotonic(), 0)
                done = await _first_done(calls, timeout_s)
                if not done:
                    hedge_at_s = None  # at most one hedge per attempt
                    self._hedge(header, request, deadline, delay_s, tried, calls, trace)
                    continue
                for future in done:
                    worker, sent_s = calls.pop(future)
                    outcome = future.result()
                    retryable = outcome.code is not None and is_retryable(
                        outcome.code, transport=outcome.transport
                    )
                    if not retryable or not calls:
                        answered = outcome.code is None
                        self._settle(worker, outcome, time.monotonic() - sent_s, model)
                        return outcome
                    self._report(worker, outcome, time.monotonic() - sent_s, model)
        finally:
            now_s = time.monotonic()
            for future, (worker, sent_s) in calls.items():
                future.cancel()  # the loser: its worker call is cancelled with its last caller
                if answered and self._outliers is not None:
                    self._outliers.on_abandoned(worker.address, now_s - sent_s)

    def _hedge_delay_s(
        self, first: Worker, header: RequestHeader, tried: list[str]
    ) -> float | None:
        """When to hedge an attempt on `first`: the model's delay, or None for no hedge.

        None also when no other worker hosts the model (a single replica): a hedge would have
        nowhere to go, so the attempt is awaited without a timer or a wait over futures.
        """
        if self._hedger is None:
            return None
        name, version = header.model_name, header.model_version
        for worker in self._pool.workers:  # first: the delay may need a sort of its window
            if worker is not first and worker.address not in tried and worker.hosts(name, version):
                return self._hedger.delay_s(name)
        return None

    def _settle(
        self, worker: Worker, outcome: ForwardOutcome, elapsed_s: float, model: str
    ) -> None:
        """The outcome an attempt returns: reported, and a NOT_FOUND tells the pool."""
        self._report(worker, outcome, elapsed_s, model)
        if outcome.code is ErrorCode.NOT_FOUND:
            self._on_not_found(worker)

    def _hedge(
        self,
        header: RequestHeader,
        request: bytes,
        deadline: float | None,
        delay_s: float,
        tried: list[str],
        calls: dict[asyncio.Future[ForwardOutcome], tuple[Worker, float]],
        trace: _Trace,
    ) -> None:
        """Send a copy to another replica when the deadline leaves time and the budget allows."""
        assert self._hedger is not None
        now_s = time.monotonic()
        if deadline is not None and deadline - now_s < delay_s:
            return
        try:
            worker = self._choose(header, tried)
        except RunnerFleetError:
            return  # no other replica: keep waiting for the first
        if not self._hedger.try_acquire():
            return
        self._on_hedge(header.model_name)
        attempt = len(tried)
        tried.append(worker.address)
        calls[_future(self._call(worker, request, deadline, trace, attempt))] = (worker, now_s)

    def _report(
        self, worker: Worker, outcome: ForwardOutcome, elapsed_s: float, model: str
    ) -> None:
        """Tell the outlier detector and the hedger how a forward ended."""
        if outcome.code is None and self._hedger is not None:
            self._hedger.observe(model, elapsed_s)
        if self._outliers is None:
            return
        if is_worker_fault(outcome):
            self._outliers.on_fault(worker.address)
        else:
            self._outliers.on_success(worker.address, elapsed_s)

    def _call(
        self, worker: Worker, request: bytes, deadline: float | None, trace: _Trace, attempt: int
    ) -> Awaitable[ForwardOutcome]:
        """One worker call, as a `forward` span when the request is traced."""
        if trace.span is None:
            return worker.forward(request, deadline, trace.traceparent)
        return self._traced_forward(worker, request, deadline, trace.span, attempt)

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


class _Trace(NamedTuple):  # a tuple: a frozen dataclass's __init__ cost 1 us per request
    """How a request's worker calls are traced: under `span`, else passing `traceparent` on."""

    span: object
    traceparent: str


def _future(call: Awaitable[ForwardOutcome]) -> asyncio.Future[ForwardOutcome]:
    return asyncio.ensure_future(call)


async def _first_done(
    calls: Collection[asyncio.Future[ForwardOutcome]], timeout_s: float | None
) -> list[asyncio.Future[ForwardOutcome]]:
    """The calls done once one is, or after ``timeout_s`` ([] then): a lean ``asyncio.wait``.

    The same as ``asyncio.wait(calls, timeout=timeout_s, return_when=FIRST_COMPLETED)`` for
    futures, without its per-call set building and coroutine checks (this runs per hedged
    attempt). Cancelling the caller leaves the calls running, as ``asyncio.wait`` does.
    """
    done = [call for call in calls if call.done()]
    if done:
        return done
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for call in calls:
        call.add_done_callback(wake)
    timer = None if timeout_s is None else waiter.get_loop().call_later(timeout_s, wake)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for call in calls:
            call.remove_done_callback(wake)
    return [call for call in calls if call.done()]


def _error(code: ErrorCode, outcome: ForwardOutcome) -> RunnerFleetError:
    return error_for_code(code, outcome.message or code.value)
