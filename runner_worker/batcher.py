"""Adaptive batcher (mechanism): one asyncio task per model method forms batches from a FIFO.

The batcher is mechanism only; two pure policies decide: ``hold_policy.HoldPolicy`` (how long
to wait for more work) and ``admission.Admission`` (what to take in, drop and shed). The
batcher owns the learned cost ``adaptive.BatchCostModel`` and feeds it each successful run.

1. ``submit`` counts the request's rows along the input batch dimension, splits a request
   larger than ``max_batch_size`` rows into chunks (re-joined when all are done), asks the
   admission policy, and appends the parts to the FIFO (refusals answer at once, never block).
   Then it sets an event: the batcher task sleeps on that event, it never polls.
2. When the queue is not empty and an in-flight slot is free, the task drops what the
   admission policy says can no longer be served (cancelled requests always), then asks the
   hold policy until when to hold, counted from when work and the slot met, and sleeps on the
   event with a timer (new arrivals wake it to ask again).
3. A batch takes the head of the queue, then later requests in FIFO order that stack with it
   (same dtypes and trailing shapes) while rows stay ``<= max_batch_size``. Requests that cannot
   stack are left in place for the next batch (they never fail their peers). The admission
   policy may shed requests of the formed batch before it runs.
4. The batch runs (inputs stacked once, one call to the model); outputs are split by rows and
   their rows checked against the input rows. If the batch fails it is bisected and the halves
   rerun, so only the request(s) that cause the error fail, each with the model's message.
   The batch is reported once (``BatchReport``), however many runs the bisection took.
5. If the batcher task dies, every pending request fails (nobody hangs) and ``submit`` refuses.
   ``drain`` stops admitting (and holding) and returns once queued and running work is done.

One hold for the cluster. The gateway (``api_gateway/coalescer.py``) and this batcher both
sit where waiting could merge work; only the worker decides how long to wait for more work.
The gateway never holds for newcomers: after a forward call that answered n > 1 callers it
regroups just those n (closed-loop callers come straight back; without it they split into
groups that alternate forever), ends the moment n items are queued (an event), and is capped
by half the last call's duration (which already contains this batcher's hold and run) and
``max_regroup_hold_s``; a lone caller (n = 1) never waits. The regrouped call reaches the worker
as one ForwardBatch, all its items queued in one loop turn, so the hold policy sees everyone it
has lately seen already queued and does not hold again; the worker holds only to merge work
from elsewhere (other gateways, direct clients), which only it can see.

Failure modes: a worker hold never exceeds the learned fixed cost of one batch; a gateway
regroup whose callers do not come back costs at most its cap per call, and in series with a
worker hold (a worker fed by several gateways) the added wait is at most the sum of both caps;
the worker's learned turnaround includes the gateway's regroup, so a longer regroup can only
turn the worker's closed-loop hold off (turnaround above the fixed cost), never lengthen it.
Non-batchable methods run one request per call with no hold, no splitting and no stacking.
Measured (bench/worker_bench.py, 2 cores, single-row requests): one client sees no added
latency; 64 closed-loop clients on the heavy MLP get batches of ~48 rows and ~6x the
throughput of batching disabled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from protos.errors import InvalidArgument, Unavailable
from runner_worker import batch_ops
from runner_worker.adaptive import BatchCostModel
from runner_worker.admission import Admission, Arrival
from runner_worker.batch_queue import BatchQueue
from runner_worker.batch_run import Item, run_bisecting
from runner_worker.batch_types import (
    BatchObserver,
    BatchPolicy,
    BatchReport,
    BatchTiming,
    BatchTracer,
    NullObserver,
)
from runner_worker.deadline_admission import DeadlineAdmission
from runner_worker.hold_policy import AdaptiveHold, HoldPolicy, NoHold

__all__ = [
    "BatchPolicy",
    "BatchReport",
    "BatchObserver",
    "BatchTiming",
    "BatchTracer",
    "Batcher",
    "RunBatch",
]

RunBatch = Callable[[list[np.ndarray]], Awaitable[list[np.ndarray]]]
_Part = tuple[list[np.ndarray], int, object]  # (arrays, rows, stack key)


class Batcher:
    """Forms batches for one model method and runs them with ``run_batch``."""

    def __init__(
        self,
        run_batch: RunBatch,
        policy: BatchPolicy,
        *,
        name: str = "batcher",
        observer: BatchObserver | None = None,
        cost: BatchCostModel | None = None,
        hold: HoldPolicy | None = None,
        admission: Admission | None = None,
        tracer: BatchTracer | None = None,
    ) -> None:
        """``hold``/``admission`` replace the default policies; give them ``cost`` too so
        they read the cost model this batcher learns (one is made when None). ``tracer``
        gets each batch's timing when a request in it carries a trace handle."""
        self._run_batch = run_batch
        self._tracer = tracer
        self.policy = policy
        self.name = name
        self._observer: BatchObserver = observer or NullObserver()
        self.cost = cost if cost is not None else BatchCostModel()
        p = policy
        if hold is None:
            hold = NoHold()
            if p.batchable and p.adaptive:
                hold = AdaptiveHold(
                    self.cost, max_batch_size=p.max_batch_size, max_latency_s=p.max_latency_s
                )
        if admission is None:  # deadline-aware by default (runner_worker/deadline_admission.py)
            admission = DeadlineAdmission(
                self.cost,
                name=name,
                max_batch_size=p.max_batch_size if p.batchable else 1,
                max_queue_size=p.max_queue_size,
                max_latency_s=p.max_latency_s,
                max_inflight_batches=p.max_inflight_batches,
            )
        self.hold: HoldPolicy = hold
        self.admission: Admission = admission
        max_rows = p.max_batch_size if p.batchable else 1
        self._queue = BatchQueue(max_rows, self.admission, self._observer)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0
        self._inflight_requests = 0
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed_reason: str | None = None
        self._admitting = True

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
        self, arrays: Sequence[np.ndarray], *, deadline_s: float | None = None, trace: Any = None
    ) -> list[np.ndarray]:
        """Queue one request and wait for its outputs; ``deadline_s`` is time.monotonic().

        ``trace`` is an opaque handle handed back to the tracer with the batch's timing.
        """
        if self._closed_reason is not None:
            raise Unavailable(f"{self.name}: {self._closed_reason}")
        if not self._admitting:
            raise Unavailable(f"{self.name}: the worker is draining and admits no new requests")
        self.start()
        arrays = list(arrays)
        rows, key = self._measure(arrays)
        limit = self.policy.max_batch_size if self.policy.batchable else 1
        now_s = time.monotonic()
        # admission sees the part count before any chunk exists: splitting is O(parts) and
        # only happens for what is admitted (the queue bounds parts, bytes bound rows)
        arrival = Arrival(rows, max(-(-rows // limit), 1), deadline_s)
        refusal = self.admission.admit(arrival, self._queue, now_s)
        if refusal is not None and self._queue.purge_cancelled():  # dead entries may be the cause
            refusal = self.admission.admit(arrival, self._queue, now_s)
        if refusal is not None:
            self._observer.on_rejected(refusal.reason)
            raise refusal.error
        parts = self._parts(arrays, rows, key)
        loop = asyncio.get_running_loop()
        items = [
            Item(part, rows, key, loop.create_future(), now_s, deadline_s, 0.0, not n, trace)
            for n, (part, rows, key) in enumerate(parts)
        ]
        busy = bool(self._queue) or self._inflight > 0
        self._queue.extend(items)
        in_system = len(self._queue) + self._inflight_requests
        self.hold.on_arrival(now_s, arrival.rows, in_system=in_system, busy=busy)
        self._idle.clear()
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
    def _measure(self, arrays: list[np.ndarray]) -> tuple[int, object]:
        """(rows, stack key) of a request; a non-batchable request is one row, no key."""
        if not self.policy.batchable:
            return 1, None
        dim = self.policy.batch_dim[0]
        try:
            return batch_ops.count_rows(arrays, dim), batch_ops.stack_key(arrays, dim)
        except InvalidArgument:
            self._observer.on_rejected("invalid_input")
            raise

    def _parts(self, arrays: list[np.ndarray], rows: int, key: object) -> list[_Part]:
        if not self.policy.batchable:
            return [(arrays, 1, None)]
        dim = self.policy.batch_dim[0]
        limit = self.policy.max_batch_size
        if rows <= limit:
            return [(arrays, rows, key)]
        return [
            (batch_ops.slice_rows(arrays, s, min(s + limit, rows), dim), min(limit, rows - s), key)
            for s in range(0, rows, limit)
        ]

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
            self._queue.drop_dead(now_s)
            if not self._queue:
                self._mark_idle()
                continue
            if hold_from_s is None:
                hold_from_s = now_s
            until_s = self._hold_until_s(hold_from_s, now_s)
            if until_s > now_s:
                self._wakeup.clear()
                timer = loop.call_at(loop.time() + (until_s - now_s), self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
                continue
            hold_from_s = None
            batch = self._take_batch(time.monotonic())
            if not batch:
                self._mark_idle()
                continue
            self._inflight += 1
            self._inflight_requests += len(batch)
            self._queue.running_rows += sum(i.rows for i in batch)
            task = loop.create_task(self._execute(batch), name=f"{self.name}-batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _hold_until_s(self, hold_from_s: float, now_s: float) -> float:
        """Ask the hold policy (never while draining: queued work should finish now)."""
        if not self._admitting:
            return hold_from_s
        return self.hold.hold_until_s(hold_from_s, now_s, self._queue.view())

    def _take_batch(self, now_s: float) -> list[Item]:
        """The next batch (a method of its own so a test can make batch forming fail)."""
        return self._queue.take_batch(now_s)

    def _mark_idle(self) -> None:
        if not self._queue and self._inflight == 0:
            self._idle.set()

    # ------------------------------------------------------------------ execution
    async def _execute(self, batch: list[Item]) -> None:
        try:
            dispatched_s = time.monotonic()
            for item in batch:
                item.dispatched_s = dispatched_s
            started_s = time.perf_counter()
            report = await run_bisecting(batch, self._run_batch, self.policy, self.cost)
            if report is not None:
                self._observer.on_batch(report)
                if self._tracer is not None:
                    self._trace(batch, dispatched_s, started_s, report)
        finally:
            self._inflight -= 1
            self._inflight_requests -= len(batch)
            self._queue.running_rows -= sum(i.rows for i in batch)
            self.hold.on_batch_done(time.monotonic())
            self._mark_idle()
            self._wakeup.set()

    def _trace(
        self, batch: list[Item], dispatched_s: float, started_s: float, report: BatchReport
    ) -> None:
        primaries = [i for i in batch if i.primary]
        if self._tracer is None or all(i.trace is None for i in primaries):
            return
        self._tracer.on_batch(
            BatchTiming(
                tuple(i.trace for i in primaries),
                tuple(i.enqueued_s for i in primaries),
                dispatched_s,
                started_s,
                time.perf_counter(),
                report,
            )
        )

    # ------------------------------------------------------------------ failure
    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        reason = "stopped"
        if not task.cancelled() and task.exception() is not None:
            reason = f"batcher task died: {task.exception()!r}"
        self._closed_reason = reason
        self._fail_queued(reason)

    def _fail_queued(self, reason: str) -> None:
        self._queue.fail_all(lambda: Unavailable(f"{self.name}: {reason}"))
        self._mark_idle()
