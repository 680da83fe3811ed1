"""The admission policy through its public interface: refusals, drops and shedding."""

from __future__ import annotations

import dataclasses

from protos.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from runner_worker.adaptive import BatchCostModel
from runner_worker.admission import Arrival, BudgetAdmission


@dataclasses.dataclass(frozen=True)
class Backlog:
    queued: int = 0
    queued_rows: int = 0
    running_rows: int = 0


@dataclasses.dataclass(frozen=True)
class Waiting:
    rows: int
    enqueued_s: float
    deadline_s: float | None = None


def admission(cost: BatchCostModel | None = None, max_latency_s: float = 0.1) -> BudgetAdmission:
    return BudgetAdmission(
        cost or BatchCostModel(),
        name="m.predict",
        max_batch_size=4,
        max_queue_size=3,
        max_latency_s=max_latency_s,
    )


def test_admit_bounds_the_queue() -> None:
    a = admission()
    assert a.admit(Arrival(8, 2, None), Backlog(queued=1), 0.0) is None
    full = a.admit(Arrival(8, 2, None), Backlog(queued=2), 0.0)
    assert full is not None
    assert full.reason == "queue_full"
    assert isinstance(full.error, ResourceExhausted)
    assert "queue full" in full.error.message
    huge = a.admit(Arrival(16, 4, None), Backlog(), 0.0)
    assert huge is not None
    assert huge.reason == "invalid_input"
    assert isinstance(huge.error, InvalidArgument)
    assert "splits into 4 batches" in huge.error.message


def test_drop_answers_requests_whose_deadline_passed() -> None:
    a = admission()
    assert a.drop(Waiting(1, 0.0), Backlog(), 5.0) is None  # no deadline
    assert a.drop(Waiting(1, 0.0, deadline_s=1.0), Backlog(), 0.5) is None
    late = a.drop(Waiting(1, 0.0, deadline_s=1.0), Backlog(), 1.0)
    assert late is not None
    assert late.reason == "deadline"
    assert isinstance(late.error, DeadlineExceeded)
    assert "1000.0 ms in queue" in late.error.message


def test_shed_only_what_waited_and_cannot_meet_the_budget() -> None:
    cost = BatchCostModel()
    for n in (1, 4):
        cost.observe(n, 0.02 + 0.01 * n)  # 30 ms alone, 60 ms for a batch of 4
    a = admission(cost, max_latency_s=0.1)
    assert a.shed(Waiting(1, 1.0), 4, 1.03) is None  # 30 ms waited + 60 ms run: fits
    shed = a.shed(Waiting(1, 1.0), 4, 1.05)  # 50 + 60 > 100
    assert shed is not None
    assert shed.reason == "latency_budget"
    assert isinstance(shed.error, ResourceExhausted)
    assert "latency budget" in shed.error.message
    assert a.shed(Waiting(1, 1.0), 4, 1.0) is None  # never shed what did not wait


def test_a_model_slower_than_the_budget_still_runs_what_did_not_wait_past_it() -> None:
    cost = BatchCostModel()
    cost.observe(1, 0.5)
    a = admission(cost, max_latency_s=0.1)
    assert a.shed(Waiting(1, 1.0), 1, 1.05) is None  # alone it can never fit: run it anyway
    assert a.shed(Waiting(1, 1.0), 1, 1.2) is not None  # it waited past the whole budget
