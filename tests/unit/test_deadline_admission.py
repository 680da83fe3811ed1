"""DeadlineAdmission through its public interface, with a learned cost and a fake clock."""

from __future__ import annotations

import dataclasses

from protos.errors import DeadlineExceeded, ResourceExhausted
from runner_worker.adaptive import BatchCostModel
from runner_worker.admission import Arrival
from runner_worker.deadline_admission import REASON, DeadlineAdmission, estimate_wait_s


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


def learned() -> BatchCostModel:
    cost = BatchCostModel()
    for n in (1, 8, 4, 8, 1):
        cost.observe(n, 0.020 + 0.003 * n)  # the overload model: 20 ms + 3 ms per row
    return cost


def policy(cost: BatchCostModel | None = None) -> DeadlineAdmission:
    return DeadlineAdmission(
        cost if cost is not None else learned(),
        name="m.f",
        max_batch_size=8,
        max_queue_size=1024,
        max_latency_s=1.0,
        margin=0.0,
        slack_s=0.0,
    )


def test_estimate_counts_batches_rows_slots_and_half_the_running_batch() -> None:
    cost = learned()
    assert abs(cost.fixed_s - 0.020) < 1e-6 and abs(cost.per_row_s - 0.003) < 1e-6
    # 16 queued + 1 own = 17 rows: 3 batches of <= 8 -> 3 * 20 ms + 17 * 3 ms = 111 ms
    one = estimate_wait_s(cost, rows_ahead=16, rows=1, running_rows=0, max_batch_size=8, slots=1)
    assert abs(one - 0.111) < 1e-6
    two = estimate_wait_s(cost, rows_ahead=16, rows=1, running_rows=0, max_batch_size=8, slots=2)
    assert abs(two - 0.0555) < 1e-6
    busy = estimate_wait_s(cost, rows_ahead=0, rows=1, running_rows=8, max_batch_size=8, slots=1)
    assert abs(busy - (0.023 + 0.022)) < 1e-6  # own run + half of a 44 ms running batch
    unknown = BatchCostModel()
    assert (
        estimate_wait_s(unknown, rows_ahead=99, rows=1, running_rows=8, max_batch_size=8, slots=1)
        == 0
    )


def test_admit_refuses_at_once_what_cannot_finish_by_its_own_deadline() -> None:
    a = policy()
    ok = a.admit(Arrival(1, 1, deadline_s=0.2), Backlog(queued=16, queued_rows=16), 0.0)
    assert ok is None  # 111 ms < 200 ms
    late = a.admit(Arrival(1, 1, deadline_s=0.1), Backlog(queued=16, queued_rows=16), 0.0)
    assert late is not None and late.reason == REASON
    assert isinstance(late.error, ResourceExhausted)
    assert "estimated wait 111.0 ms vs remaining deadline 100.0 ms" in late.error.message
    # no deadline: only the bounded queue applies; unknown cost: nothing refused by estimate
    assert a.admit(Arrival(1, 1, None), Backlog(queued=900, queued_rows=900), 0.0) is None
    fresh = policy(BatchCostModel())
    assert fresh.admit(Arrival(1, 1, 0.001), Backlog(queued=900, queued_rows=900), 0.0) is None


def test_margin_and_slack_make_admission_stricter() -> None:
    strict = DeadlineAdmission(
        learned(), name="m.f", max_batch_size=8, max_queue_size=1024, max_latency_s=1.0,
        margin=0.5, slack_s=0.01,
    )  # fmt: skip
    # 111 ms * 1.5 + 10 ms = 176.5 ms > 150 ms
    assert strict.admit(Arrival(1, 1, 0.15), Backlog(16, 16), 0.0) is not None
    assert policy().admit(Arrival(1, 1, 0.15), Backlog(16, 16), 0.0) is None


def test_drop_answers_queued_requests_that_can_no_longer_finish() -> None:
    a = policy()
    assert a.drop(Waiting(1, 0.0, deadline_s=0.2), Backlog(8, 8), 0.1) is None  # 44 < 100 ms
    gone = a.drop(Waiting(1, 0.0, deadline_s=0.2), Backlog(8, 8), 0.17)  # 44 > 30 ms left
    assert gone is not None and gone.reason == REASON
    assert "vs remaining deadline 30.0 ms" in gone.error.message
    passed = a.drop(Waiting(1, 0.0, deadline_s=0.2), Backlog(8, 8), 0.2)
    assert passed is not None and isinstance(passed.error, DeadlineExceeded)
    assert a.drop(Waiting(1, 0.0), Backlog(8, 8), 50.0) is None  # no deadline, no budget here


def test_shed_uses_the_formed_batch_and_then_the_latency_budget() -> None:
    a = policy()
    assert a.shed(Waiting(1, 0.0, deadline_s=0.2), 8, 0.15) is None  # 44 ms <= 50 ms
    late = a.shed(Waiting(1, 0.0, deadline_s=0.2), 8, 0.16)
    assert late is not None and late.reason == REASON
    over = a.shed(Waiting(1, 0.0), 8, 1.5)  # no deadline: waited past max_latency_s
    assert over is not None and over.reason == "latency_budget"
