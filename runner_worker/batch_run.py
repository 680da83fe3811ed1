"""Running one formed batch: stack, call the model, split; on failure bisect and rerun.

Only the request(s) that make the model fail get its error; their peers get their outputs.
The batch is reported once, as formed (``BatchReport``), with the time of every execution the
bisection took summed, so metrics count one batch per batch formed, not one per attempt.
Successful executions feed the learned cost model (each is a true sample of ``cost(n)``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import numpy as np

from protos.errors import Internal, RunnerFleetError
from runner_worker import batch_ops
from runner_worker.adaptive import BatchCostModel
from runner_worker.batch_types import BatchPolicy, BatchReport

__all__ = ["Item", "run_bisecting"]

RunBatch = Callable[[list[np.ndarray]], Awaitable[list[np.ndarray]]]


@dataclasses.dataclass(eq=False, slots=True)
class Item:
    """One queued request (or one chunk of a split request) and the future that answers it."""

    arrays: list[np.ndarray]
    rows: int
    key: object
    future: asyncio.Future[list[np.ndarray]]
    enqueued_s: float
    deadline_s: float | None
    dispatched_s: float = 0.0
    primary: bool = True  # False for the 2nd.. chunks of a split request (counted once)
    trace: object = None  # the request's opaque trace handle, for the tracer only


@dataclasses.dataclass
class _Tally:
    input_s: float = 0.0
    infer_s: float = 0.0
    output_s: float = 0.0
    executions: int = 0
    failures: int = 0
    answered_rows: int = 0
    answered_requests: int = 0


async def run_bisecting(
    items: list[Item], run_batch: RunBatch, policy: BatchPolicy, cost: BatchCostModel
) -> BatchReport | None:
    """Run ``items`` as one batch, bisecting on failure; the one report (None: all cancelled)."""
    items = [i for i in items if not i.future.done()]
    if not items:
        return None
    tally = _Tally()
    await _run(items, run_batch, policy, cost, tally)
    return BatchReport(
        rows=sum(i.rows for i in items),
        requests=len(items),
        queue_wait_s=tuple(i.dispatched_s - i.enqueued_s for i in items if i.primary),
        input_s=tally.input_s,
        infer_s=tally.infer_s,
        output_s=tally.output_s,
        ok=tally.failures == 0,
        executions=tally.executions,
        answered_rows=tally.answered_rows,
        answered_requests=tally.answered_requests,
    )


async def _run(
    items: list[Item], run_batch: RunBatch, p: BatchPolicy, cost: BatchCostModel, tally: _Tally
) -> None:
    items = [i for i in items if not i.future.done()]
    if not items:
        return
    tally.executions += 1
    t0 = time.perf_counter()
    t1 = t2 = t0
    try:
        if p.batchable:
            arrays = batch_ops.stack(
                [i.arrays for i in items], p.batch_dim[0], [i.key for i in items]
            )
        else:
            arrays = items[0].arrays
        t1 = time.perf_counter()
        outputs = await run_batch(arrays)
        t2 = time.perf_counter()
        if p.batchable:
            parts = batch_ops.split(outputs, [i.rows for i in items], p.batch_dim[1])
        else:
            parts = [list(outputs)]
    except Exception as exc:  # noqa: BLE001 - any model error is contained and bisected
        t2 = t2 if t2 > t1 else time.perf_counter()
        tally.input_s += t1 - t0
        tally.infer_s += t2 - t1
        tally.failures += 1
        if len(items) == 1:
            _fail(items[0], exc)
            return
        mid = len(items) // 2
        await _run(items[:mid], run_batch, p, cost, tally)
        await _run(items[mid:], run_batch, p, cost, tally)
        return
    t3 = time.perf_counter()
    cost.observe(sum(i.rows for i in items), t2 - t1)
    for item, part in zip(items, parts, strict=True):
        if not item.future.done():
            item.future.set_result(part)
            tally.answered_rows += item.rows
            tally.answered_requests += 1
    tally.input_s += t1 - t0
    tally.infer_s += t2 - t1
    tally.output_s += t3 - t2


def _fail(item: Item, exc: BaseException) -> None:
    if item.future.done():
        return
    if isinstance(exc, RunnerFleetError):
        item.future.set_exception(exc)
    else:
        item.future.set_exception(Internal(f"model raised {type(exc).__name__}: {exc}"))
