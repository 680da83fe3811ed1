"""The batcher's FIFO: what waits, what is dropped, and which requests form the next batch.

No task and no clock here: the batcher calls in with the time. The queue is also the
``Backlog`` the admission policy reads (rows waiting and running), and the ``QueueView`` the
hold policy reads. Cancelled requests are always dropped; the admission policy decides the
rest (``drop`` before a batch forms, ``shed`` in a formed batch before it runs).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

from protos.errors import RunnerFleetError
from runner_worker.admission import Admission, Refusal
from runner_worker.batch_run import Item
from runner_worker.batch_types import BatchObserver
from runner_worker.hold_policy import QueueView

__all__ = ["BatchQueue"]


class BatchQueue:
    """FIFO of ``Item``s for one batcher; ``max_rows`` bounds a batch (1: not batchable)."""

    def __init__(self, max_rows: int, admission: Admission, observer: BatchObserver) -> None:
        self._items: collections.deque[Item] = collections.deque()
        self._rows = 0  # sum of the waiting items' rows, kept by every change to _items
        self._max_rows = max_rows
        self._admission = admission
        self._observer = observer
        self.running_rows = 0  # rows in batches now running (the batcher keeps it)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued(self) -> int:
        """Requests (or chunks) waiting."""
        return len(self._items)

    @property
    def queued_rows(self) -> int:
        """Rows waiting (O(1): admission reads it for every arrival and every item taken)."""
        return self._rows

    def extend(self, items: Iterable[Item]) -> None:
        """Append admitted requests at the tail."""
        for item in items:
            self._items.append(item)
            self._rows += item.rows

    def purge_cancelled(self) -> bool:
        """Forget requests whose caller cancelled; True if there were any."""
        kept = [i for i in self._items if not i.future.done()]
        for _ in range(len(self._items) - len(kept)):
            self._observer.on_shed("cancelled")
        purged = len(kept) < len(self._items)
        self._items = collections.deque(kept)
        self._rows = sum(i.rows for i in kept)
        return purged

    def view(self) -> QueueView:
        """What the hold policy sees: size, rows that stack with the head, head's age."""
        head = self._items[0]
        rows = 0
        for item in self._items:
            if item.key == head.key:
                rows += item.rows
                if rows >= self._max_rows:
                    break
        return QueueView(len(self._items), rows, head.enqueued_s)

    def drop_dead(self, now_s: float) -> None:
        """Drop cancelled requests, and those the admission policy drops, from the head."""
        while self._items:
            item = self._items[0]
            if item.future.done():
                self._pop_head()
                self._observer.on_shed("cancelled")
                continue
            refusal = self._admission.drop(item, self, now_s)
            if refusal is None:
                return
            self._pop_head()
            self._refuse(item, refusal)

    def take_batch(self, now_s: float) -> list[Item]:
        """Pop the head and the later requests that stack with it, FIFO, within max rows."""
        batch: list[Item] = []
        skipped: list[Item] = []
        rows = 0
        while self._items and rows < self._max_rows:
            item = self._pop_head()
            if item.future.done():
                self._observer.on_shed("cancelled")
                continue
            refusal = self._admission.drop(item, self, now_s)
            if refusal is not None:
                self._refuse(item, refusal)
                continue
            if batch and item.key != batch[0].key:
                skipped.append(item)
                continue
            if batch and rows + item.rows > self._max_rows:
                self._items.appendleft(item)
                self._rows += item.rows
                break
            batch.append(item)
            rows += item.rows
        self._items.extendleft(reversed(skipped))
        self._rows += sum(i.rows for i in skipped)
        kept = []
        for item in batch:
            refusal = self._admission.shed(item, rows, now_s)
            if refusal is None:
                kept.append(item)
            else:
                self._refuse(item, refusal)
        return kept

    def fail_all(self, error: Callable[[], RunnerFleetError]) -> None:
        """Answer every waiting request with a fresh ``error()`` (the batcher stopped)."""
        while self._items:
            item = self._pop_head()
            if not item.future.done():
                item.future.set_exception(error())

    def _pop_head(self) -> Item:
        item = self._items.popleft()
        self._rows -= item.rows
        return item

    def _refuse(self, item: Item, refusal: Refusal) -> None:
        self._observer.on_shed(refusal.reason)
        item.future.set_exception(refusal.error)
