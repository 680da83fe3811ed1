"""Per-worker coalescing of forwards: while a batch call is in flight, new requests queue.

When a call returns, everything that queued meanwhile goes to the worker in the next single
call (up to `max_items`, and `max_batch_bytes` since the worker's message limit holds for the
sum). At one client this is one call per request with no added wait; under load the worker's
per-call cost (a gRPC round trip, a task, a parse) is paid once per batch instead of once per
request, which is what lets the gateway keep up with calling the worker directly. No polling:
the end of one call starts the next.

Regrouping, the gateway's part of the cluster's one hold design (written down in
`runner_worker/batcher.py` and docs/ARCHITECTURE.md, "Batching: one hold"): only the worker's
batcher decides how long to wait for more work; the gateway never waits for newcomers.
Closed-loop callers answered by one call come straight back, but a call starts as soon as the
first of them arrives, so without care the in-flight requests split into groups that
alternate forever (a 1-item call, then a 15-item one: half-size batches at the worker).
After a call that answered n > 1 items (n counts those that queued while it ran too), the
next call therefore waits, event-driven, only for those n: it starts the moment n items queue,
and at the latest after `max_regroup_hold_s` or half the last call's duration (which already
contains the worker's hold and run). A lone caller (n = 1) never waits, so concurrency 1 pays
nothing; under open-loop load the regroup costs at most that bound. The regrouped call
reaches the worker as one ForwardBatch, so the worker's hold sees everyone queued at once and
does not hold again.

Calls in whole worker batches: when more than one full worker batch is queued
(``full_call_items``, the smallest ``max_batch_size`` among the worker's batching models; 0 =
unknown), a call takes a whole number of them and leaves the rest for the next call. A call of
10 items to a worker that runs batches of 8 would run 8 and then 2, paying a batch's fixed cost
for 2 rows while the 2 could have joined the next full batch: under overload that cost a
sixth of the worker's throughput. Below that depth (every closed-loop load up to the batch
size) a call takes everything, as before.

Failure modes: a whole call that fails (worker dead, connection reset) fails each of its
items with a `transport` outcome, which the forwarder may retry on another replica; one item
the worker refuses never fails its neighbours; a caller that cancels while its item is still
queued is skipped before the next call is built, and a call whose callers have all cancelled
is cancelled at the worker; items whose deadline passed while queued fail with
DEADLINE_EXCEEDED without being sent; an unexpected error fails every item of the call
(INTERNAL), so no caller ever waits forever.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple

from protos.errors import ErrorCode

__all__ = ["ForwardOutcome", "BatchCall", "Coalescer"]

_HOLD_FRACTION_OF_CALL = 0.5  # a regroup hold never exceeds this share of the last call


class ForwardOutcome(NamedTuple):
    """The worker's answer to one forwarded request: response bytes, or an ErrorCode and message.

    ``code`` is None for a response. Transport-neutral: the pool's transport edge turns gRPC
    statuses into ErrorCodes, so nothing above it sees a gRPC code.
    """

    code: ErrorCode | None
    payload: bytes = b""
    message: str = ""
    transport: bool = False  # the whole call failed (the worker may never have seen the item)

    @property
    def ok(self) -> bool:
        """Whether the worker answered with a response."""
        return self.code is None


# (list of (request bytes, timeout_s or 0 = none, traceparent or ""), call timeout_s or None)
# -> one outcome per item
BatchCall = Callable[
    [list[tuple[bytes, float, str]], float | None], Awaitable[list[ForwardOutcome]]
]
BatchObserver = Callable[[int, float], None]
# (request bytes, timeout_s or 0 = none, traceparent or "") -> its outcome, as one plain call
SoloCall = Callable[[bytes, float, str], Awaitable[ForwardOutcome]]


class _Item(NamedTuple):
    request: bytes
    deadline: float | None  # time.monotonic() seconds
    future: asyncio.Future[ForwardOutcome]
    traceparent: str = ""  # W3C trace context for the worker (one per item)


class Coalescer:
    """Queue for one worker; at most `max_calls` batch calls in flight at once."""

    def __init__(
        self,
        call: BatchCall,
        *,
        max_items: int = 256,
        max_calls: int = 1,
        max_batch_bytes: int = 64 * 1024 * 1024,
        on_batch: BatchObserver | None = None,
        deadline_slack_s: float = 0.5,
        max_regroup_hold_s: float = 0.006,
        solo_call: SoloCall | None = None,
        solo_min_bytes: int = 1024 * 1024,
    ) -> None:
        self._call = call
        self._max_items = max_items
        self._max_calls = max_calls
        self._max_bytes = max_batch_bytes
        self._on_batch = on_batch
        self._slack_s = deadline_slack_s
        self._max_hold_s = max_regroup_hold_s
        self._solo_call = solo_call
        self._solo_min_bytes = solo_min_bytes
        self._regroup_target = 0  # queue length a held call waits for (0: not holding)
        self._regrouped: asyncio.Future[None] | None = None  # wakes the held call
        self._last_answered = 0  # items the last finished call answered
        self._last_hold_until_s = 0.0  # until when those callers are expected back
        self._queue: collections.deque[_Item] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls = 0  # calls started and not finished (tasks leave `_tasks` a turn later)
        self.full_call_items = 0  # rows of one full worker batch (0: unknown); module doc
        self._closed = False
        self.inflight = 0  # items queued or in a call, read by the router

    def submit(
        self, request: bytes, deadline: float | None, traceparent: str = ""
    ) -> asyncio.Future[ForwardOutcome]:
        """Queue one serialized ModelInferRequest; the future resolves to its outcome."""
        future: asyncio.Future[ForwardOutcome] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_result(
                ForwardOutcome(
                    ErrorCode.UNAVAILABLE, message="worker left the pool", transport=True
                )
            )
            return future
        self.inflight += 1
        if self._solo_call is not None and len(request) >= self._solo_min_bytes:
            item = _Item(request, deadline, future, traceparent)
            self._track(self._run_solo(item), "forward-solo")
            return future
        self._queue.append(_Item(request, deadline, future, traceparent))
        if self._regroup_target and len(self._queue) >= self._regroup_target:
            _wake(self._regrouped)
        if self._calls < self._max_calls:
            self._start(*self._regroup_after_last_call())
        return future

    def _regroup_after_last_call(self) -> tuple[int, float]:
        """(target, hold_s) when callers the last call answered are still expected back."""
        hold_s = self._last_hold_until_s - time.monotonic()
        if self._last_answered <= 1 or hold_s <= 0:
            return 0, 0.0  # a lone caller (or a quiet spell) never waits
        return min(self._last_answered, self._max_items), hold_s

    def _start(self, regroup_target: int = 0, hold_s: float = 0.0) -> None:
        self._calls += 1
        self._track(self._run(regroup_target, hold_s), "forward-batch")

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_items(self) -> int:
        """How many items the next call takes: all, or whole worker batches (module doc)."""
        full, queued = self.full_call_items, len(self._queue)
        if not full or queued <= full:
            return self._max_items
        return min(queued, self._max_items) // full * full or self._max_items

    def _take_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        size_bytes = 0
        now = time.monotonic()
        limit = self._call_items()
        while self._queue and len(batch) < limit:
            if batch and size_bytes + len(self._queue[0].request) > self._max_bytes:
                break  # the worker's message limit holds for the sum; a big one goes alone
            item = self._queue.popleft()
            if item.future.done():  # the caller cancelled while queued
                self.inflight -= 1
            elif item.deadline is not None and item.deadline <= now:
                self.inflight -= 1
                item.future.set_result(
                    ForwardOutcome(
                        ErrorCode.DEADLINE_EXCEEDED, message="deadline passed in the gateway queue"
                    )
                )
            else:
                batch.append(item)
                size_bytes += len(item.request)
        return batch

    async def _hold_for_regroup(self, target: int, hold_s: float) -> None:
        """Wait (event-driven, bounded) until `target` items queue, or `hold_s` passes.

        Closed-loop callers answered by the last call come straight back; without this
        short regroup they always miss the next call, and the in-flight requests stay split
        in two groups that alternate forever (half-size batches at the worker). It waits
        for those callers only; waiting for more work is the worker's hold (module doc).
        """
        if len(self._queue) >= target or hold_s <= 0:
            return
        loop = asyncio.get_running_loop()
        # a future and a timer, not wait_for: that costs a task and its callbacks per call
        waiter = self._regrouped = loop.create_future()
        self._regroup_target = target
        timer = loop.call_later(hold_s, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._regroup_target = 0
            self._regrouped = None

    async def _run(self, regroup_target: int = 0, hold_s: float = 0.0) -> None:
        try:
            await self._hold_for_regroup(regroup_target, hold_s)
        except asyncio.CancelledError:
            self._calls -= 1
            raise
        batch = self._take_batch()
        if not batch:
            self._calls -= 1
            return
        outcomes: list[ForwardOutcome] | None = None
        started_s = time.monotonic()
        try:
            items = [
                (item.request, _timeout_s(item.deadline, started_s), item.traceparent)
                for item in batch
            ]
            deadlines = [item.deadline for item in batch]
            call_timeout_s = (
                None if None in deadlines else max(t for _, t, _ in items) + self._slack_s
            )
            outcomes = await _answer_all(batch, self._call(items, call_timeout_s))
        finally:
            self._calls -= 1
            self.inflight -= len(batch)
            for item, outcome in zip(batch, outcomes or [_CANCELLED] * len(batch), strict=True):
                if not item.future.done():
                    item.future.set_result(outcome)
            if self._on_batch is not None:
                self._on_batch(len(batch), time.monotonic() - started_s)
            # the callers just answered are likely to return: let them join the next call
            ended_s = time.monotonic()
            hold_s = min(self._max_hold_s, (ended_s - started_s) * _HOLD_FRACTION_OF_CALL)
            self._last_answered = len(self._queue) + len(batch)
            self._last_hold_until_s = ended_s + hold_s
            if self._queue and not self._closed and self._calls < self._max_calls:
                self._start(min(self._last_answered, self._max_items), hold_s)

    async def _run_solo(self, item: _Item) -> None:
        """A big request as its own call, beside the queue: coalescing would only copy it."""
        assert self._solo_call is not None
        started_s = time.monotonic()
        outcome: ForwardOutcome | None = None
        try:
            if item.deadline is not None and item.deadline <= started_s:
                outcome = ForwardOutcome(
                    ErrorCode.DEADLINE_EXCEEDED, message="deadline passed in the gateway"
                )
            else:
                timeout_s = _timeout_s(item.deadline, started_s)
                solo = self._solo_one(item.request, timeout_s, item.traceparent)
                (outcome,) = await _answer_all([item], solo)
        finally:
            self.inflight -= 1
            if not item.future.done():
                item.future.set_result(outcome or _CANCELLED)
            if self._on_batch is not None:
                self._on_batch(1, time.monotonic() - started_s)

    async def _solo_one(
        self, request: bytes, timeout_s: float, traceparent: str
    ) -> list[ForwardOutcome]:
        assert self._solo_call is not None
        return [await self._solo_call(request, timeout_s, traceparent)]

    def close(self) -> None:
        """Fail queued items (retryable elsewhere) and cancel calls in flight."""
        self._closed = True
        self.abort("worker left the pool")

    def abort(self, reason: str) -> None:
        """Fail queued items and calls in flight with a retryable transport outcome.

        For a worker that stopped answering (its health check timed out): its callers go to
        another replica now instead of waiting for their deadline. The queue stays open.
        """
        while self._queue:
            item = self._queue.popleft()
            self.inflight -= 1
            if not item.future.done():
                item.future.set_result(
                    ForwardOutcome(ErrorCode.UNAVAILABLE, message=reason, transport=True)
                )
        for task in list(self._tasks):
            task.cancel()


# the outcome of a call cut short because its worker left the pool (retryable elsewhere)
_CANCELLED = ForwardOutcome(
    ErrorCode.UNAVAILABLE, message="forward cancelled: worker left the pool", transport=True
)


async def _answer_all(
    batch: list[_Item], call: Awaitable[list[ForwardOutcome]]
) -> list[ForwardOutcome]:
    """One outcome per item from `call`, whatever happens; cancelled with its last caller.

    Re-raises CancelledError only when the running task itself is being cancelled (close()).
    """
    future = asyncio.ensure_future(call)
    _cancel_when_abandoned(batch, future)
    try:
        outcomes = await future
        if len(outcomes) != len(batch):
            message = "worker answered a different number of results"
            return [ForwardOutcome(ErrorCode.INTERNAL, message=message)] * len(batch)
        return outcomes
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return [_CANCELLED] * len(batch)
    except Exception as exc:  # noqa: BLE001 - every caller must get an answer
        return [ForwardOutcome(ErrorCode.INTERNAL, message=f"forward failed: {exc!r}")] * len(batch)


def _cancel_when_abandoned(batch: list[_Item], call: asyncio.Future[Any]) -> None:
    """Cancel the worker call once every caller in it has cancelled (the worker stops too)."""
    live = len(batch)

    def on_done(future: asyncio.Future[ForwardOutcome]) -> None:
        nonlocal live
        if future.cancelled():
            live -= 1
            if live == 0:
                call.cancel()

    for item in batch:
        item.future.add_done_callback(on_done)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    """End a regroup hold (its queue target was reached, or its time is up)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _timeout_s(deadline: float | None, now: float) -> float:
    if deadline is None:
        return 0.0
    return max(deadline - now, 0.001)
