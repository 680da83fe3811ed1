"""The hold policy through its public interface, with a fake clock and observed batch costs."""

from __future__ import annotations

import pytest

from runner_worker.adaptive import SILENCE_GAPS, BatchCostModel
from runner_worker.hold_policy import AdaptiveHold, NoHold, QueueView


def learned_cost(fixed_s: float = 0.01, per_row_s: float = 0.0001) -> BatchCostModel:
    cost = BatchCostModel()
    for n in (1, 8, 32, 64):
        cost.observe(n, fixed_s + per_row_s * n)
    return cost


def adaptive(cost: BatchCostModel, max_latency_s: float = 1.0) -> AdaptiveHold:
    return AdaptiveHold(cost, max_batch_size=64, max_latency_s=max_latency_s)


def test_no_hold_never_holds() -> None:
    hold = NoHold()
    hold.on_arrival(0.0, 1, in_system=5, busy=True)
    assert hold.hold_until_s(0.5, 0.6, QueueView(1, 1, 0.0)) == 0.5


def test_a_lone_client_is_never_held() -> None:
    """One closed-loop client: each request arrives after the previous one was answered."""
    cost = learned_cost()
    hold = adaptive(cost)
    now_s = 0.0
    for _ in range(50):
        hold.on_arrival(now_s, 1, in_system=1, busy=False)
        assert hold.hold_until_s(now_s, now_s, QueueView(1, 1, now_s)) == now_s
        now_s += cost.predict_s(1)
        hold.on_batch_done(now_s)
        now_s += 0.0003


def test_turnaround_is_learned_from_batch_done_to_next_arrival() -> None:
    hold = adaptive(learned_cost())
    hold.on_batch_done(1.0)
    hold.on_arrival(1.002, 1, in_system=1, busy=False)
    assert hold.turnaround_s == pytest.approx(0.002)
    hold.on_arrival(1.003, 1, in_system=2, busy=True)  # not the first since the batch: no change
    assert hold.turnaround_s == pytest.approx(0.002)


def test_closed_loop_clients_are_waited_for_up_to_two_turnarounds() -> None:
    """16 clients answered together come back one every 0.1 ms: the hold waits for them."""
    cost = learned_cost(fixed_s=0.01, per_row_s=0.002)  # expected gain alone never pays
    hold = adaptive(cost)
    t = 0.0
    for i in range(16):  # the first burst: 16 in the system at once
        hold.on_arrival(t + i * 1e-4, 1, in_system=i + 1, busy=i > 0)
    t = 0.05
    hold.on_batch_done(t)
    hold.on_arrival(t + 0.001, 1, in_system=1, busy=False)  # the first one back
    first_s = t + 0.001
    until = hold.hold_until_s(first_s, first_s, QueueView(1, 1, first_s))
    assert first_s < until <= first_s + min(cost.fixed_s, 2 * hold.turnaround_s) + 1e-12
    # once everyone is back (the queue matches the recent concurrency) it runs at once
    assert hold.hold_until_s(first_s, first_s, QueueView(16, 16, first_s)) == first_s


def test_a_past_peak_is_forgotten_within_a_second() -> None:
    hold = adaptive(learned_cost())
    hold.on_arrival(0.0, 1, in_system=64, busy=True)
    assert hold.concurrency_estimate == 64
    hold.on_arrival(1.0, 1, in_system=1, busy=False)
    assert hold.concurrency_estimate < 2


def burst(hold: AdaptiveHold, n: int, gap_s: float, in_system: int) -> float:
    for i in range(n):
        hold.on_arrival(i * gap_s, 1, in_system=in_system, busy=True)
    return (n - 1) * gap_s


def test_hold_is_bounded_by_fixed_cost_silence_and_budget() -> None:
    cost = learned_cost(fixed_s=0.01, per_row_s=0.0)
    hold = adaptive(cost)
    gap_s = 1e-5
    last_s = burst(hold, 20, gap_s, in_system=32)
    until = hold.hold_until_s(last_s, last_s, QueueView(1, 1, last_s))
    assert last_s < until <= last_s + cost.fixed_s
    assert until <= last_s + SILENCE_GAPS * gap_s + 1e-12  # the stream stopped: stop holding
    # the oldest request has used its budget: never hold past it
    tight = adaptive(cost, max_latency_s=0.005)
    last_s = burst(tight, 20, gap_s, in_system=32)
    assert tight.hold_until_s(last_s, last_s, QueueView(1, 1, last_s)) == last_s


def test_a_full_batch_is_never_held() -> None:
    hold = adaptive(learned_cost())
    last_s = burst(hold, 20, 1e-5, in_system=128)
    assert hold.hold_until_s(last_s, last_s, QueueView(64, 64, last_s)) == last_s
    assert hold.hold_until_s(last_s, last_s, QueueView(2, 64, last_s)) == last_s


def test_unknown_cost_or_rate_never_holds() -> None:
    hold = adaptive(BatchCostModel())
    assert hold.hold_until_s(0.0, 0.0, QueueView(1, 1, 0.0)) == 0.0  # no arrivals yet
    last_s = burst(hold, 20, 1e-5, in_system=32)
    assert hold.hold_until_s(last_s, last_s, QueueView(1, 1, last_s)) == last_s
