"""Adaptive batcher: one asyncio task per model method that forms batches from a FIFO queue.

Algorithm (DESIGN.md section 5):

1. ``submit`` counts the request's rows along the input batch dimension, splits a request
   larger than ``max_batch_size`` rows into chunks (re-joined when all are done), and appends
   the parts to a bounded FIFO queue. A full queue refuses at once (``ResourceExhausted``); it
   never blocks. Then it sets an event: the batcher task sleeps on that event, it never polls.
2. When the queue is not empty and an in-flight slot is free, the task decides whether to hold:
   ``adaptive.hold_time_s`` compares the fixed cost that waiting saves with the wait it adds,
   from the learned cost model ``cost(n) = fixed + per_row * n`` and the arrival rate. When
   answered clients typically send their next request (the *turnaround*, learned online)
   sooner than a batch's fixed cost, waiting up to about two turnarounds for them pays too
   (closed-loop clients: merging them saves a whole extra batch; without this, batches
   alternate half full). The hold is counted from when the slot became free; it is skipped
   when as many requests are queued as were recently in the system at once (everyone is
   here), ends when the batch fills or arrivals fall silent for a few burst gaps, and never
   runs past the oldest request's latency budget. A lone client gets no hold.
3. A batch takes the head of the queue, then later requests in FIFO order that stack with it
   (same dtypes and trailing shapes) while rows stay ``<= max_batch_size``. Requests that cannot
   stack are left in place for the next batch (they never fail their peers). Requests whose
   client cancelled are dropped, whose deadline passed fail with ``DeadlineExceeded``, and
   those that cannot meet the ``max_latency_ms`` budget (waited plus expected run time) are
   shed with ``ResourceExhausted`` saying so, all before the batch runs.
4. The batch runs (inputs stacked once, one call to the model); outputs are split by rows and
   their rows checked against the input rows. If the batch fails it is bisected and the halves
   rerun, so only the request(s) that cause the error fail, each with the model's message.
5. If the batcher task dies, every pending request fails (nobody hangs) and ``submit`` refuses.
   ``drain`` stops admitting and returns once queued and running work is done.

Failure modes: a hold never exceeds the learned fixed cost of one batch (at worst it adds
that much latency when the clients it waited for do not come); with one batch size only, the
fixed/per-row split cannot be learned and all cost counts as fixed, which lengthens expected-
gain holds (silence and turnaround bounds still end them). A model slower than the budget on
its own still runs requests that did not wait (only waiting beyond the budget sheds them).
Non-batchable methods run one request per call with no hold, no splitting and no stacking.
Measured (bench/worker_bench.py, 2 cores, single-row requests): one client sees no added
latency; 64 closed-loop clients on the heavy MLP get batches of ~48 rows and ~6x the
throughput of batching disabled.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np

from protos.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    RunnerFleetError,
    Unavailable,
)
from runner_worker import batch_ops
from runner_worker.adaptive import SILENCE_GAPS, ArrivalRate, BatchCostModel, hold_time_s

__all__ = ["BatchPolicy", "BatchReport", "BatchObserver", "Batcher", "RunBatch"]

# how fast the estimate of concurrent requests forgets a past peak: per arrival, and at
# least by half every _PEAK_HALF_LIFE_S, so a drop from 64 clients to 1 stops the
# closed-loop hold within about a second rather than after ~750 arrivals
_PEAK_DECAY = 0.995
_PEAK_HALF_LIFE_S = 0.1
_TURNAROUND_ALPHA = 0.2

RunBatch = Callable[[list[np.ndarray]], Awaitable[list[np.ndarray]]]


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    """Knobs of one batcher (per model method)."""

    batchable: bool = True
    batch_dim: tuple[int, int] = (0, 0)
    max_batch_size: int = 64
    max_latency_s: float = 1.0
    max_queue_size: int = 1024
    max_inflight_batches: int = 1
    adaptive: bool = True


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What one model execution did (for metrics and statistics)."""

    rows: int
    requests: int
    queue_wait_s: tuple[float, ...]  # one per request (a split request counts once)
    input_s: float
    infer_s: float
    output_s: float
    ok: bool


class BatchObserver(Protocol):
    """Receives the batcher's events; implemented by the worker's metrics/statistics."""

    def on_queue_depth(self, depth: int) -> None: ...
    def on_shed(self, reason: str) -> None: ...
    def on_rejected(self, reason: str) -> None: ...
    def on_batch(self, report: BatchReport) -> None: ...


class _NullObserver:
    def on_queue_depth(self, depth: int) -> None:
        pass

    def on_shed(self, reason: str) -> None:
        pass

    def on_rejected(self, reason: str) -> None:
        pass

    def on_batch(self, report: BatchReport) -> None:
        pass


@dataclasses.dataclass(eq=False)
class _Item:
    arrays: list[np.ndarray]
    rows: int
    key: Any
    future: asyncio.Future[list[np.ndarray]]
    enqueued_s: float
    deadline_s: float | None
    dispatched_s: float = 0.0
    primary: bool = True  # False for the 2nd.. chunks of a split request (counted once)


class Batcher:
    """Forms batches for one model method and runs them with ``run_batch``."""

    def __init__(
        self,
        run_batch: RunBatch,
        policy: BatchPolicy,
        *,
        name: str = "batcher",
        observer: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.policy = policy
        self.name = name
        self._observer: BatchObserver = observer or _NullObserver()
        self._queue: collections.deque[_Item] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0
        self._inflight_requests = 0
        self.concurrency_estimate = 0.0
        self._estimated_s = 0.0  # time.monotonic() of the last update of the estimate
        self.turnaround_s: float | None = None  # batch done -> next arrival (EWMA)
        self._completed_s: float | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed_reason: str | None = None
        self._admitting = True
        self.cost = BatchCostModel()
        self.arrivals = ArrivalRate()

    # ----------------------------------------------------------------- public surface
    @property
    def queue_depth(self) -> int:
        """Requests (or request chunks) waiting for a batch."""
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        return len(self._queue) + self._inflight_requests

    def start(self) -> None:
        """Start the batcher task (idempotent; needs a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)
            self._task.add_done_callback(self._on_task_done)

    async def submit(
        self, arrays: Sequence[np.ndarray], *, deadline_s: float | None = None
    ) -> list[np.ndarray]:
        """Queue one request and wait for its outputs; ``deadline_s`` is time.monotonic()."""
        if self._closed_reason is not None:
            raise Unavailable(f"{self.name}: {self._closed_reason}")
        if not self._admitting:
            raise Unavailable(f"{self.name}: the worker is draining and admits no new requests")
        self.start()
        arrays = list(arrays)
        parts = self._parts(arrays)
        if len(parts) > self.policy.max_queue_size:
            self._observer.on_rejected("invalid_input")
            raise InvalidArgument(
                f"{self.name}: a request of {sum(rows for _, rows, _ in parts)} rows splits into "
                f"{len(parts)} batches of at most {self.policy.max_batch_size} rows, more than "
                f"the queue holds (max_queue_size={self.policy.max_queue_size}); send smaller "
                "requests or raise --max-queue-size"
            )
        if len(self._queue) + len(parts) > self.policy.max_queue_size:
            self._purge_cancelled()
        if len(self._queue) + len(parts) > self.policy.max_queue_size:
            self._observer.on_rejected("queue_full")
            raise ResourceExhausted(
                f"{self.name}: queue full ({len(self._queue)} waiting, "
                f"max_queue_size={self.policy.max_queue_size}); retry later or add workers"
            )
        now_s = time.monotonic()
        loop = asyncio.get_running_loop()
        items: list[_Item] = []
        for part, rows, key in parts:
            item = _Item(part, rows, key, loop.create_future(), now_s, deadline_s, 0.0, not items)
            items.append(item)
            self._queue.append(item)
        busy = len(self._queue) > len(items) or self._inflight > 0
        in_system = len(self._queue) + self._inflight_requests
        decay = min(_PEAK_DECAY, 0.5 ** ((now_s - self._estimated_s) / _PEAK_HALF_LIFE_S))
        self.concurrency_estimate = max(float(in_system), self.concurrency_estimate * decay)
        self._estimated_s = now_s
        self.arrivals.observe(now_s, sum(i.rows for i in items), busy)
        if self._completed_s is not None:  # first arrival since a batch finished
            gap_s = now_s - self._completed_s
            t = self.turnaround_s
            self.turnaround_s = gap_s if t is None else t + _TURNAROUND_ALPHA * (gap_s - t)
            self._completed_s = None
        self._idle.clear()
        self._observer.on_queue_depth(len(self._queue))
        self._wakeup.set()
        if len(items) == 1:
            return await items[0].future
        try:
            results = await asyncio.gather(*(i.future for i in items))
        except BaseException:
            for i in items:
                i.future.cancel()
            raise
        return batch_ops.join(results, self.policy.batch_dim[1])

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Stop admitting; True once queued and running work finished within ``timeout_s``."""
        self._admitting = False
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the task; queued requests fail, running batches finish."""
        self._admitting = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        elif self._task is None:
            self._fail_queued("closed")
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # ------------------------------------------------------------------ admission
    def _parts(self, arrays: list[np.ndarray]) -> list[tuple[list[np.ndarray], int, Any]]:
        if not self.policy.batchable:
            return [(arrays, 1, None)]
        dim = self.policy.batch_dim[0]
        try:
            rows = batch_ops.count_rows(arrays, dim)
            key = batch_ops.stack_key(arrays, dim)
        except InvalidArgument:
            self._observer.on_rejected("invalid_input")
            raise
        limit = self.policy.max_batch_size
        if rows <= limit:
            return [(arrays, rows, key)]
        return [
            (
                batch_ops.slice_rows(arrays, start, min(start + limit, rows), dim),
                min(limit, rows - start),
                key,
            )
            for start in range(0, rows, limit)
        ]

    def _purge_cancelled(self) -> None:
        kept = [i for i in self._queue if not i.future.done()]
        for _ in range(len(self._queue) - len(kept)):
            self._observer.on_shed("cancelled")
        self._queue = collections.deque(kept)

    # ------------------------------------------------------------------ the task
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        hold_from_s: float | None = None
        while True:
            if not self._admitting and not self._queue and self._inflight == 0:
                self._idle.set()
            if not self._queue or self._inflight >= self.policy.max_inflight_batches:
                hold_from_s = None  # a hold counts from when work and a free slot meet
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now_s = time.monotonic()
            self._drop_dead(now_s)
            if not self._queue:
                self._mark_idle()
                continue
            if hold_from_s is None:
                hold_from_s = now_s
            until_s = self._hold_until_s(hold_from_s)
            if until_s > now_s:
                self._wakeup.clear()
                timer = loop.call_at(loop.time() + (until_s - now_s), self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
                continue
            hold_from_s = None
            batch = self._take_batch(time.monotonic())
            self._observer.on_queue_depth(len(self._queue))
            if not batch:
                self._mark_idle()
                continue
            self._inflight += 1
            self._inflight_requests += len(batch)
            task = loop.create_task(self._execute(batch), name=f"{self.name}-batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _hold_until_s(self, hold_from_s: float) -> float:
        """When to stop holding the batch being formed (in the past: run it now).

        The larger of the expected-gain hold and (closed loop) two turnarounds capped at the
        fixed cost, counted from ``hold_from_s``; none when as many requests are queued as
        were recently in the system at once, and cut short once arrivals have been silent for
        ``SILENCE_GAPS`` burst gaps (or, before anyone came, two turnarounds).
        """
        burst_gap_s = self.arrivals.burst_gap_s
        last_s = self.arrivals.last_s
        if burst_gap_s is None or last_s is None:
            return hold_from_s
        if len(self._queue) >= self.concurrency_estimate - 0.5:
            return hold_from_s  # every client we have seen lately is already queued
        hold_s = self._hold_s()
        if hold_s <= 0.0:
            return hold_from_s
        turnaround_s = self.turnaround_s
        silence_s = max(last_s, hold_from_s) + SILENCE_GAPS * burst_gap_s
        if last_s <= hold_from_s and turnaround_s is not None:
            silence_s = max(silence_s, hold_from_s + 2.0 * turnaround_s)
        return min(hold_from_s + hold_s, silence_s)

    def _hold_s(self) -> float:
        """Total hold worth paying for the batch being formed (0 when it should run now)."""
        p = self.policy
        if not (p.batchable and p.adaptive) or not self._admitting:
            return 0.0
        head = self._queue[0]
        rows = 0
        for item in self._queue:
            if item.key == head.key:
                rows += item.rows
                if rows >= p.max_batch_size:
                    return 0.0
        hold = hold_time_s(rows, self.cost, self.arrivals)
        turnaround_s = self.turnaround_s
        if turnaround_s is not None and turnaround_s < self.cost.fixed_s:
            # closed loop: answered clients come back sooner than a batch's fixed cost, so
            # waiting about one turnaround for them saves a whole extra batch
            hold = max(hold, min(self.cost.fixed_s, 2.0 * turnaround_s))
        if hold <= 0.0:
            return 0.0
        budget_left_s = head.enqueued_s + p.max_latency_s - time.monotonic()
        room_s = budget_left_s - self.cost.predict_s(p.max_batch_size)
        return max(min(hold, room_s), 0.0)

    def _drop_dead(self, now_s: float) -> None:
        """Drop cancelled and deadline-passed requests from the head of the queue."""
        while self._queue:
            item = self._queue[0]
            if item.future.done():
                self._queue.popleft()
                self._observer.on_shed("cancelled")
            elif item.deadline_s is not None and now_s >= item.deadline_s:
                self._queue.popleft()
                self._shed_deadline(item, now_s)
            else:
                return

    def _shed_deadline(self, item: _Item, now_s: float) -> None:
        self._observer.on_shed("deadline")
        waited_ms = (now_s - item.enqueued_s) * 1000
        item.future.set_exception(
            DeadlineExceeded(f"{self.name}: deadline passed after {waited_ms:.1f} ms in queue")
        )

    def _take_batch(self, now_s: float) -> list[_Item]:
        """Pop the head and the later requests that stack with it, FIFO, within max rows."""
        p = self.policy
        batch: list[_Item] = []
        skipped: list[_Item] = []
        rows = 0
        limit = p.max_batch_size if p.batchable else 1
        while self._queue and rows < limit:
            item = self._queue.popleft()
            if item.future.done():
                self._observer.on_shed("cancelled")
                continue
            if item.deadline_s is not None and now_s >= item.deadline_s:
                self._shed_deadline(item, now_s)
                continue
            if batch and item.key != batch[0].key:
                skipped.append(item)
                continue
            if batch and rows + item.rows > limit:
                self._queue.appendleft(item)
                break
            batch.append(item)
            rows += item.rows
        self._queue.extendleft(reversed(skipped))
        return self._shed_over_budget(batch, now_s)

    def _shed_over_budget(self, batch: list[_Item], now_s: float) -> list[_Item]:
        """Shed requests that cannot finish within the latency budget."""
        budget_s = self.policy.max_latency_s
        expected_s = self.cost.predict_s(sum(i.rows for i in batch))
        kept = []
        for item in batch:
            waited_s = now_s - item.enqueued_s
            alone_s = self.cost.predict_s(item.rows)
            over = waited_s + expected_s > budget_s and (waited_s > budget_s or alone_s <= budget_s)
            if not over or waited_s <= 0.0:
                kept.append(item)
                continue
            self._observer.on_shed("latency_budget")
            item.future.set_exception(
                ResourceExhausted(
                    f"{self.name}: shed: cannot meet the latency budget max_latency_ms="
                    f"{budget_s * 1000:.0f} (waited {waited_s * 1000:.1f} ms, expected "
                    f"inference {expected_s * 1000:.1f} ms); retry, add workers or raise "
                    "--max-latency-ms"
                )
            )
        return kept

    def _mark_idle(self) -> None:
        if not self._queue and self._inflight == 0:
            self._idle.set()

    # ------------------------------------------------------------------ execution
    async def _execute(self, batch: list[_Item]) -> None:
        try:
            dispatched_s = time.monotonic()
            for item in batch:
                item.dispatched_s = dispatched_s
            await self._run_items(batch)
        finally:
            self._inflight -= 1
            self._inflight_requests -= len(batch)
            self._completed_s = time.monotonic()
            self._mark_idle()
            self._wakeup.set()

    async def _run_items(self, items: list[_Item]) -> None:
        """Run ``items`` as one batch; on failure bisect so only the culprits fail."""
        p = self.policy
        items = [i for i in items if not i.future.done()]
        if not items:
            return
        rows = sum(i.rows for i in items)
        waits = tuple(i.dispatched_s - i.enqueued_s for i in items if i.primary)
        t0 = time.perf_counter()
        t1 = t2 = t0
        try:
            if p.batchable:
                arrays = batch_ops.stack([i.arrays for i in items], p.batch_dim[0])
            else:
                arrays = items[0].arrays
            t1 = time.perf_counter()
            outputs = await self._run_batch(arrays)
            t2 = time.perf_counter()
            if p.batchable:
                parts = batch_ops.split(outputs, [i.rows for i in items], p.batch_dim[1])
            else:
                parts = [list(outputs)]
        except Exception as exc:  # noqa: BLE001 - any model error is contained and bisected
            t2 = t2 if t2 > t1 else time.perf_counter()
            self._observer.on_batch(
                BatchReport(rows, len(items), waits, t1 - t0, t2 - t1, 0.0, False)
            )
            if len(items) == 1:
                _fail(items[0], exc)
                return
            mid = len(items) // 2
            await self._run_items(items[:mid])
            await self._run_items(items[mid:])
            return
        t3 = time.perf_counter()
        self.cost.observe(rows, t2 - t1)
        for item, part in zip(items, parts, strict=True):
            if not item.future.done():
                item.future.set_result(part)
        self._observer.on_batch(
            BatchReport(rows, len(items), waits, t1 - t0, t2 - t1, t3 - t2, True)
        )

    # ------------------------------------------------------------------ failure
    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        reason = "stopped"
        if not task.cancelled() and task.exception() is not None:
            reason = f"batcher task died: {task.exception()!r}"
        self._closed_reason = reason
        self._fail_queued(reason)

    def _fail_queued(self, reason: str) -> None:
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(Unavailable(f"{self.name}: {reason}"))
        self._observer.on_queue_depth(0)
        self._mark_idle()


def _fail(item: _Item, exc: BaseException) -> None:
    if item.future.done():
        return
    if isinstance(exc, RunnerFleetError):
        item.future.set_exception(exc)
    else:
        item.future.set_exception(Internal(f"model raised {type(exc).__name__}: {exc}"))
