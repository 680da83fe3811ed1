"""Admission policy: which requests the batcher takes in, keeps, and runs (pure).

The batcher (mechanism) asks an ``Admission`` three questions, each answered with ``None``
(go on) or a ``Refusal`` (an error for the caller and a metric reason):

- ``admit``: a request arrives (already split into ``parts``); refused ones are answered at
  once and never queued (``on_rejected``). Never blocks.
- ``drop``: a queued request is about to be considered (at the head of the queue before a
  hold, and as each request is taken into a batch); dropped ones are answered (``on_shed``).
- ``shed``: a request is in a formed batch, just before it runs (``on_shed``).

Each question gets a ``Backlog`` (what is queued and running) and reads the learned batch
cost it was built with, so a policy can estimate when a request would finish. That is the
hook for deadline-aware admission (refuse at arrival what cannot finish in time, drop queued
requests that no longer can): a new ``Admission``, no change to the batcher.

``BudgetAdmission`` is today's policy (DESIGN.md section 5): a bounded queue (a request that
splits into more parts than the queue holds is invalid; a full queue is RESOURCE_EXHAUSTED);
a request whose deadline passed is dropped with DEADLINE_EXCEEDED; a request that waited and
cannot meet the ``max_latency_s`` budget (waited plus the expected run of its batch) is shed
with RESOURCE_EXHAUSTED saying so. Failure mode: a model slower than the budget on its own
still runs requests that did not wait (only waiting beyond the budget sheds them).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Protocol

from protos.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, RunnerFleetError
from runner_worker.adaptive import BatchCostModel

__all__ = ["Arrival", "Backlog", "Waiting", "Refusal", "Admission", "BudgetAdmission"]


class Arrival(NamedTuple):  # a tuple: a frozen dataclass's __init__ cost 1 us per request
    """A request at the door, after splitting into at most max_batch_size-row parts."""

    rows: int
    parts: int
    deadline_s: float | None  # time.monotonic() seconds, None = no deadline


class Backlog(Protocol):
    """The work ahead of a request."""

    @property
    def queued(self) -> int:
        """Requests (or chunks of split requests) waiting."""

    @property
    def queued_rows(self) -> int:
        """Rows waiting."""

    @property
    def running_rows(self) -> int:
        """Rows in batches now running."""


class Waiting(Protocol):
    """A queued request as a policy sees it."""

    @property
    def rows(self) -> int: ...

    @property
    def enqueued_s(self) -> float: ...

    @property
    def deadline_s(self) -> float | None: ...


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a request is refused or shed: the caller's error and the metric reason."""

    error: RunnerFleetError
    reason: str  # metric label: queue_full, invalid_input, deadline, latency_budget


class Admission(Protocol):
    """Decides admission and shedding for one batcher (see the module doc)."""

    def admit(self, arrival: Arrival, backlog: Backlog, now_s: float) -> Refusal | None: ...

    def drop(self, waiting: Waiting, backlog: Backlog, now_s: float) -> Refusal | None: ...

    def shed(self, waiting: Waiting, batch_rows: int, now_s: float) -> Refusal | None: ...


class BudgetAdmission:
    """Bounded queue, deadlines, and the ``max_latency_s`` budget (see the module doc)."""

    def __init__(
        self,
        cost: BatchCostModel,
        *,
        name: str,
        max_batch_size: int,
        max_queue_size: int,
        max_latency_s: float,
    ) -> None:
        self.cost = cost
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_size = max_queue_size
        self.max_latency_s = max_latency_s

    def admit(self, arrival: Arrival, backlog: Backlog, now_s: float) -> Refusal | None:
        limit = self.max_queue_size
        if arrival.parts > limit:
            return Refusal(
                InvalidArgument(
                    f"{self.name}: a request of {arrival.rows} rows splits into "
                    f"{arrival.parts} batches of at most {self.max_batch_size} rows, more than "
                    f"the queue holds (max_queue_size={limit}); send smaller "
                    "requests or raise --max-queue-size"
                ),
                "invalid_input",
            )
        if backlog.queued + arrival.parts > limit:
            return Refusal(
                ResourceExhausted(
                    f"{self.name}: queue full ({backlog.queued} waiting, "
                    f"max_queue_size={limit}); retry later or add workers"
                ),
                "queue_full",
            )
        return None

    def drop(self, waiting: Waiting, backlog: Backlog, now_s: float) -> Refusal | None:
        if waiting.deadline_s is None or now_s < waiting.deadline_s:
            return None
        waited_ms = (now_s - waiting.enqueued_s) * 1000
        return Refusal(
            DeadlineExceeded(f"{self.name}: deadline passed after {waited_ms:.1f} ms in queue"),
            "deadline",
        )

    def shed(self, waiting: Waiting, batch_rows: int, now_s: float) -> Refusal | None:
        budget_s = self.max_latency_s
        expected_s = self.cost.predict_s(batch_rows)
        waited_s = now_s - waiting.enqueued_s
        alone_s = self.cost.predict_s(waiting.rows)
        over = waited_s + expected_s > budget_s and (waited_s > budget_s or alone_s <= budget_s)
        if not over or waited_s <= 0.0:
            return None
        return Refusal(
            ResourceExhausted(
                f"{self.name}: shed: cannot meet the latency budget max_latency_ms="
                f"{budget_s * 1000:.0f} (waited {waited_s * 1000:.1f} ms, expected "
                f"inference {expected_s * 1000:.1f} ms); retry, add workers or raise "
                "--max-latency-ms"
            ),
            "latency_budget",
        )
