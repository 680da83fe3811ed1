"""The adaptive batcher: FIFO batches within max rows, splitting, refusal, shedding, bisection."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protos.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from runner_worker.adaptive import ArrivalRate, BatchCostModel, hold_time_s
from runner_worker.batcher import Batcher, BatchPolicy, BatchReport
from runner_worker.hold_policy import AdaptiveHold, QueueView
from runner_worker.statistics import ModelStats


class FakeModel:
    """Doubles its input; records batch row counts; can hold batches behind a gate."""

    def __init__(self, fail_on: float | None = None, gated: bool = False) -> None:
        self.batches: list[int] = []
        self.seen: list[np.ndarray] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        self.started.set()
        await self.gate.wait()
        x = arrays[0]
        self.batches.append(x.shape[0])
        self.seen.append(x)
        if self.fail_on is not None and np.any(x == self.fail_on):
            raise ValueError(f"bad value {self.fail_on} in batch")
        return [x * 2]


class Recorder:
    def __init__(self) -> None:
        self.shed: list[str] = []
        self.rejected: list[str] = []
        self.reports: list[BatchReport] = []

    def on_shed(self, reason: str) -> None:
        self.shed.append(reason)

    def on_rejected(self, reason: str) -> None:
        self.rejected.append(reason)

    def on_batch(self, report: BatchReport) -> None:
        self.reports.append(report)


def rows(n: int, start: float = 0.0, width: int = 2) -> np.ndarray:
    return (np.arange(n * width, dtype=np.float32) + start).reshape(n, width)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_single_request_passes_through() -> None:
    async def main():
        model = FakeModel()
        b = Batcher(model, BatchPolicy(max_batch_size=8))
        out = await b.submit([rows(3)])
        np.testing.assert_array_equal(out[0], rows(3) * 2)
        await b.close()

    run(main())


@given(st.lists(st.integers(1, 20), min_size=1, max_size=25), st.integers(1, 16))
@settings(max_examples=40, deadline=None)
def test_every_request_gets_its_own_rows_and_batches_stay_within_max(sizes, max_rows) -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=max_rows))
        tasks = [
            asyncio.ensure_future(b.submit([rows(n, start=1000 * i)])) for i, n in enumerate(sizes)
        ]
        await asyncio.sleep(0)
        model.gate.set()
        results = await asyncio.gather(*tasks)
        for i, (n, out) in enumerate(zip(sizes, results, strict=True)):
            np.testing.assert_array_equal(out[0], rows(n, start=1000 * i) * 2)
        assert all(1 <= r <= max_rows for r in model.batches)
        assert sum(model.batches) == sum(sizes)
        # FIFO: rows reach the model in submission order
        np.testing.assert_array_equal(
            np.concatenate(model.seen),
            np.concatenate([rows(n, 1000 * i) for i, n in enumerate(sizes)]),
        )
        await b.close()

    run(main())


def test_requests_queued_behind_a_running_batch_share_the_next_batch() -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=64))
        first = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        rest = [asyncio.ensure_future(b.submit([rows(1, start=i)])) for i in range(10)]
        await asyncio.sleep(0)
        model.gate.set()
        await asyncio.gather(first, *rest)
        assert model.batches == [1, 10]
        await b.close()

    run(main())


def test_oversize_request_is_split_and_rejoined() -> None:
    async def main():
        model = FakeModel()
        b = Batcher(model, BatchPolicy(max_batch_size=4))
        out = await b.submit([rows(10)])
        np.testing.assert_array_equal(out[0], rows(10) * 2)
        assert model.batches == [4, 4, 2]
        await b.close()

    run(main())


def test_request_larger_than_the_whole_queue_is_refused_as_invalid() -> None:
    async def main():
        model = FakeModel()
        rec = Recorder()
        b = Batcher(model, BatchPolicy(max_batch_size=4, max_queue_size=2), observer=rec)
        with pytest.raises(InvalidArgument, match="splits into 3 batches"):
            await b.submit([rows(10)])
        assert rec.rejected == ["invalid_input"]
        assert model.batches == []
        out = await b.submit([rows(8)])  # two batches still fit: served
        np.testing.assert_array_equal(out[0], rows(8) * 2)
        await b.close()

    run(main())


def test_full_queue_refuses_at_once() -> None:
    async def main():
        model = FakeModel(gated=True)
        rec = Recorder()
        b = Batcher(model, BatchPolicy(max_batch_size=1, max_queue_size=2), observer=rec)
        running = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        queued = [asyncio.ensure_future(b.submit([rows(1)])) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ResourceExhausted, match="queue full"):
            await b.submit([rows(1)])
        assert rec.rejected == ["queue_full"]
        model.gate.set()
        await asyncio.gather(running, *queued)
        await b.close()

    run(main())


def test_cancelled_and_expired_requests_never_reach_the_model() -> None:
    async def main():
        model = FakeModel(gated=True)
        rec = Recorder()
        b = Batcher(model, BatchPolicy(max_batch_size=64), observer=rec)
        running = asyncio.ensure_future(b.submit([rows(1, start=1)]))
        await model.started.wait()
        cancelled = asyncio.ensure_future(b.submit([rows(1, start=-5)]))
        expired = asyncio.ensure_future(
            b.submit([rows(1, start=-7)], deadline_s=time.monotonic() - 1.0)
        )
        good = asyncio.ensure_future(b.submit([rows(1, start=3)]))
        await asyncio.sleep(0)
        cancelled.cancel()
        model.gate.set()
        await running
        np.testing.assert_array_equal((await good)[0], rows(1, start=3) * 2)
        with pytest.raises(DeadlineExceeded, match="deadline passed"):
            await expired
        assert cancelled.cancelled()
        seen = np.concatenate(model.seen)
        assert not np.any(seen < 0)
        assert sorted(rec.shed) == ["cancelled", "deadline"]
        await b.close()

    run(main())


def test_incompatible_request_runs_on_its_own_and_peers_succeed() -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=64))
        running = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        a1 = asyncio.ensure_future(b.submit([rows(2, width=2)]))
        odd = asyncio.ensure_future(b.submit([rows(1, width=5)]))
        a2 = asyncio.ensure_future(b.submit([rows(3, width=2, start=9)]))
        await asyncio.sleep(0)
        model.gate.set()
        await running
        np.testing.assert_array_equal((await a1)[0], rows(2) * 2)
        np.testing.assert_array_equal((await a2)[0], rows(3, start=9) * 2)
        np.testing.assert_array_equal((await odd)[0], rows(1, width=5) * 2)
        assert model.batches == [1, 5, 1]
        await b.close()

    run(main())


@given(st.lists(st.booleans(), min_size=1, max_size=12))
@settings(max_examples=30, deadline=None)
def test_failed_batch_is_bisected_so_only_culprits_fail(bad_flags) -> None:
    async def main():
        model = FakeModel(fail_on=-1.0, gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=64))
        blocker = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        tasks = []
        for i, bad in enumerate(bad_flags):
            x = np.full((1, 2), -1.0, np.float32) if bad else rows(1, start=10 * i)
            tasks.append(asyncio.ensure_future(b.submit([x])))
        await asyncio.sleep(0)
        model.gate.set()
        await blocker
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, (bad, res) in enumerate(zip(bad_flags, results, strict=True)):
            if bad:
                assert isinstance(res, Internal)
                assert "bad value -1.0" in res.message
            else:
                np.testing.assert_array_equal(res[0], rows(1, start=10 * i) * 2)
        await b.close()

    run(main())


def test_output_rows_are_checked_against_input_rows() -> None:
    async def main():
        async def wrong(arrays):
            return [arrays[0][:-1]]

        b = Batcher(wrong, BatchPolicy(max_batch_size=8))
        with pytest.raises(Internal, match="input rows"):
            await b.submit([rows(3)])
        await b.close()

    run(main())


def test_rows_must_agree_across_inputs() -> None:
    async def main():
        rec = Recorder()
        b = Batcher(FakeModel(), BatchPolicy(), observer=rec)
        with pytest.raises(InvalidArgument, match="disagree"):
            await b.submit([rows(2), rows(3)])
        assert rec.rejected == ["invalid_input"]
        await b.close()

    run(main())


def test_dead_batcher_task_fails_every_pending_request() -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=1))
        running = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        waiting = [asyncio.ensure_future(b.submit([rows(1)])) for _ in range(3)]
        await asyncio.sleep(0)

        def boom(now_s):
            raise RuntimeError("bug in batch forming")

        b._take_batch = boom  # simulate a bug inside the task
        model.gate.set()
        await running
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(
            isinstance(r, Unavailable) and "bug in batch forming" in r.message for r in results
        )
        with pytest.raises(Unavailable):
            await b.submit([rows(1)])
        await b.close()

    run(main())


def test_drain_answers_queued_work_then_refuses() -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=2))
        tasks = [asyncio.ensure_future(b.submit([rows(1, start=i)])) for i in range(7)]
        await model.started.wait()
        drain = asyncio.ensure_future(b.drain(10))
        await asyncio.sleep(0)
        with pytest.raises(Unavailable, match="draining"):
            await b.submit([rows(1)])
        model.gate.set()
        assert await drain
        for i, t in enumerate(tasks):
            np.testing.assert_array_equal(t.result()[0], rows(1, start=i) * 2)
        await b.close()

    run(main())


def test_requests_that_cannot_meet_the_latency_budget_are_shed() -> None:
    async def main():
        model = FakeModel(gated=True)
        rec = Recorder()
        b = Batcher(model, BatchPolicy(max_batch_size=1, max_latency_s=0.02), observer=rec)
        running = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        late = asyncio.ensure_future(b.submit([rows(1)]))
        await asyncio.sleep(0.05)  # let it wait past its 20 ms budget (no timing assert)
        model.gate.set()
        await running
        with pytest.raises(ResourceExhausted, match="latency budget"):
            await late
        assert rec.shed == ["latency_budget"]
        await b.close()

    run(main())


def test_non_batchable_methods_run_one_request_per_call() -> None:
    async def main():
        calls = []

        async def model(arrays):
            calls.append(arrays)
            return [arrays[0] + 1]

        b = Batcher(model, BatchPolicy(batchable=False))
        outs = await asyncio.gather(*(b.submit([np.float64(i).reshape(())]) for i in range(5)))
        assert [float(o[0]) for o in outs] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert len(calls) == 5
        await b.close()

    run(main())


def test_cost_model_learns_fixed_and_per_row_cost() -> None:
    cost = BatchCostModel()
    for n in (1, 8, 32, 64, 2, 16) * 3:
        cost.observe(n, 0.002 + 0.0005 * n)
    assert cost.fixed_s == pytest.approx(0.002, rel=1e-6)
    assert cost.per_row_s == pytest.approx(0.0005, rel=1e-6)
    assert cost.predict_s(10) == pytest.approx(0.007, rel=1e-6)


def test_hold_is_zero_for_a_lone_client_and_shrinks_with_queued_rows() -> None:
    cost = BatchCostModel()
    for n in (1, 4, 16, 64):
        cost.observe(n, 0.002 + 0.0002 * n)
    lone = ArrivalRate()
    for i in range(20):  # one client: the next request comes after the previous answer
        lone.observe(i * (cost.predict_s(1) + 0.0003), 1)
    assert hold_time_s(1, cost, lone) == 0.0
    busy = ArrivalRate()
    for i in range(50):
        busy.observe(i * 0.00002, 1)
    holds = [hold_time_s(k, cost, busy) for k in (1, 2, 4, 8)]
    assert holds[0] > 0
    assert holds == sorted(holds, reverse=True)
    assert hold_time_s(1, BatchCostModel(), busy) == 0.0  # unknown cost: never hold


def test_a_past_peak_of_clients_is_forgotten_within_a_second() -> None:
    async def main():
        model = FakeModel(gated=True)
        b = Batcher(model, BatchPolicy(max_batch_size=64))
        burst = [asyncio.ensure_future(b.submit([rows(1)])) for _ in range(64)]
        await model.started.wait()
        model.gate.set()
        await asyncio.gather(*burst)
        assert b.hold.concurrency_estimate >= 32  # the peak is remembered while it lasts
        await asyncio.sleep(1.0)  # then one client alone, after a quiet second
        await b.submit([rows(1)])
        assert b.hold.concurrency_estimate < 2  # so the closed-loop hold no longer waits for 64
        await b.close()

    run(main())


class SpyHold(AdaptiveHold):
    """The real adaptive hold, recording every answer it gives (public interface only)."""

    def __init__(self, cost: BatchCostModel, **knobs) -> None:
        super().__init__(cost, **knobs)
        self.held: list[float] = []

    def hold_until_s(self, hold_from_s: float, now_s: float, queue: QueueView) -> float:
        until = super().hold_until_s(hold_from_s, now_s, queue)
        self.held.append(until - hold_from_s)
        return until


def test_a_lone_client_is_never_held() -> None:
    async def main():
        model = FakeModel()
        policy = BatchPolicy(max_batch_size=64)
        cost = BatchCostModel()
        spy = SpyHold(cost, max_batch_size=64, max_latency_s=policy.max_latency_s)
        b = Batcher(model, policy, cost=cost, hold=spy)
        for i in range(50):
            await b.submit([rows(1, start=i)])
        assert spy.held
        assert all(h <= 0.0 for h in spy.held)
        assert model.batches == [1] * 50
        await b.close()

    run(main())


def test_no_hold_once_every_recent_client_is_queued() -> None:
    cost = BatchCostModel()
    hold = AdaptiveHold(cost, max_batch_size=64, max_latency_s=1.0)
    for n in (1, 8, 32):  # a large fixed cost: holding would pay if anyone else came
        cost.observe(n, 0.01 + 0.0001 * n)
    for i in range(10):
        hold.arrivals.observe(i * 1e-5, 1, busy=True)
    hold.concurrency_estimate = 3.0
    now = 1.0
    assert hold.hold_until_s(now, now, QueueView(2, 2, now)) > now  # one more may come: wait
    assert hold.hold_until_s(now, now, QueueView(3, 3, now)) == now  # all three here: run now


def test_closed_loop_hold_waits_about_one_turnaround_for_answered_clients() -> None:
    cost = BatchCostModel()
    hold = AdaptiveHold(cost, max_batch_size=64, max_latency_s=1.0)
    for n in (8, 16, 32):  # fixed cost 10 ms, 2 ms per row: expected gain alone never pays
        cost.observe(n, 0.01 + 0.002 * n)
    for i in range(10):
        hold.arrivals.observe(i * 1e-3, 1, busy=True)
    hold.concurrency_estimate = 16.0
    now = 1.0  # later than every arrival: nobody came yet
    queue = QueueView(8, 8, now)
    assert hold.hold_until_s(now, now, queue) == now  # no turnaround known: run now
    hold.turnaround_s = 0.001
    until = hold.hold_until_s(now, now, queue)
    assert now < until <= now + 0.002 + 1e-9  # two turnarounds, less than the fixed cost
    hold.turnaround_s = 0.05  # clients come back slower than a batch's fixed cost
    assert hold.hold_until_s(now, now, queue) == now


def test_a_bisected_batch_is_reported_once_as_formed() -> None:
    async def main():
        model = FakeModel(fail_on=-1.0, gated=True)
        rec = Recorder()
        b = Batcher(model, BatchPolicy(max_batch_size=64), observer=rec)
        blocker = asyncio.ensure_future(b.submit([rows(1)]))
        await model.started.wait()
        bad = np.full((1, 2), -1.0, np.float32)
        xs = [rows(2, start=10), bad, rows(3, start=20), rows(1, start=30)]
        tasks = [asyncio.ensure_future(b.submit([x])) for x in xs]
        await asyncio.sleep(0)
        model.gate.set()
        await blocker
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], Internal)
        assert len(model.batches) > 2  # the failed batch of 7 rows was bisected and rerun
        assert [(r.rows, r.requests, r.ok) for r in rec.reports] == [(1, 1, True), (7, 4, False)]
        failed = rec.reports[1]
        assert failed.executions == len(model.batches) - 1
        assert (failed.answered_rows, failed.answered_requests) == (6, 3)
        assert len(failed.queue_wait_s) == 4  # each request's wait observed once
        stats = ModelStats("m", "v1")
        for report in rec.reports:
            stats.on_batch(report)
        assert (stats.inference_count, stats.execution_count) == (1 + 6, 2)  # answered rows
        await b.close()

    run(main())


def test_a_regrouped_forward_batch_is_not_held_again() -> None:
    """The one-hold design: a gateway's regrouped call (all callers at once) runs at once."""

    async def main():
        batches: list[int] = []

        async def model(arrays):
            batches.append(arrays[0].shape[0])
            await asyncio.sleep(0.005)  # a fixed cost, so a closed-loop hold would pay
            return [arrays[0] * 2]

        policy = BatchPolicy(max_batch_size=64)
        cost = BatchCostModel()
        spy = SpyHold(cost, max_batch_size=64, max_latency_s=policy.max_latency_s)
        b = Batcher(model, policy, cost=cost, hold=spy)
        for _ in range(20):  # 8 closed-loop callers, forwarded together each round
            await asyncio.gather(*(b.submit([rows(1, start=i)]) for i in range(8)))
        assert cost.fixed_s > 0
        assert spy.turnaround_s is not None
        assert spy.turnaround_s < cost.fixed_s  # the closed-loop hold would apply...
        assert spy.held
        assert all(h <= 0.0 for h in spy.held)
        assert batches == [8] * 20
        await b.close()

    run(main())
