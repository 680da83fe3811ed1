"""BatchQueue keeps its waiting-row count in step with what waits, through every change."""

from __future__ import annotations

import asyncio

import numpy as np

from protos.errors import Unavailable
from runner_worker.admission import Refusal
from runner_worker.batch_queue import BatchQueue
from runner_worker.batch_run import Item


class _AdmitAll:
    def admit(self, arrival, backlog, now_s) -> Refusal | None:
        return None

    def drop(self, waiting, backlog, now_s) -> Refusal | None:
        return None

    def shed(self, waiting, batch_rows, now_s) -> Refusal | None:
        return None


class _Observer:
    def __init__(self) -> None:
        self.shed: list[str] = []

    def on_shed(self, reason: str) -> None:
        self.shed.append(reason)

    def on_rejected(self, reason: str) -> None:
        pass

    def on_batch(self, report) -> None:
        pass


def _item(loop: asyncio.AbstractEventLoop, rows: int, key: object = "a") -> Item:
    return Item([np.zeros((rows, 2))], rows, key, loop.create_future(), 0.0, None)


def _waiting_rows(q: BatchQueue) -> int:
    """The rows a full drain takes out: the ground truth the counter must match."""
    return sum(i.rows for i in q._items)  # noqa: SLF001 - the check needs the true contents


def test_queued_rows_follows_extend_take_purge_and_fail() -> None:
    loop = asyncio.new_event_loop()
    try:
        obs = _Observer()
        q = BatchQueue(8, _AdmitAll(), obs)
        items = [_item(loop, r, key) for r, key in [(3, "a"), (2, "b"), (4, "a"), (5, "a")]]
        q.extend(items)
        assert q.queued_rows == 14
        batch = q.take_batch(0.0)  # a(3) + a(4) stack; b skipped and put back; a(5) over 8
        assert [i.rows for i in batch] == [3, 4]
        assert q.queued_rows == 7 == _waiting_rows(q)
        items[1].future.cancel()  # b
        assert q.purge_cancelled()
        assert q.queued_rows == 5 == _waiting_rows(q)
        q.extend([_item(loop, 1)])
        cancelled = _item(loop, 6)
        cancelled.future.cancel()
        q.extend([cancelled])
        assert q.queued_rows == 12
        q.take_batch(0.0)  # 5 and 1 stack; the cancelled head of the rest is dropped
        assert q.queued_rows == _waiting_rows(q) == 0
        assert obs.shed == ["cancelled", "cancelled"]
        q.extend([_item(loop, 2), _item(loop, 3)])
        q.fail_all(lambda: Unavailable("stopped"))
        assert q.queued_rows == 0
        assert len(q) == 0
    finally:
        loop.close()
