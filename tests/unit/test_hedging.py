"""Hedging policy (api_gateway/hedging.py) and the forwarder's hedged attempts, fake transport."""

from __future__ import annotations

import asyncio
import time

from api_gateway.coalescer import Coalescer, ForwardOutcome
from api_gateway.forwarder import Forwarder
from api_gateway.hedging import HedgePolicy, Hedger
from api_gateway.outlier import OutlierDetector, OutlierPolicy
from protos.errors import ErrorCode
from tests.unit.test_coalescer import HEADER, FakeCall, FakePool, FakeWorker, sync


def test_no_hedge_without_evidence_then_p95_with_a_floor() -> None:
    hedger = Hedger(HedgePolicy(min_samples=20, min_delay_s=0.005, quantile=0.95))
    for _ in range(19):
        hedger.observe("m", 0.010)
        assert hedger.delay_s("m") is None
    hedger.observe("m", 0.010)
    assert hedger.delay_s("m") == 0.010
    fast = Hedger(HedgePolicy(min_samples=1, min_delay_s=0.005))
    fast.observe("m", 0.0001)
    assert fast.delay_s("m") == 0.005
    assert Hedger(HedgePolicy(enabled=False, min_samples=0)).delay_s("m") is None


def test_p95_follows_the_slow_tail() -> None:
    hedger = Hedger(HedgePolicy(min_samples=20, window=100))
    for i in range(100):
        hedger.observe("m", 0.1 if i % 10 == 0 else 0.01)  # 10% slow
    assert hedger.delay_s("m") == 0.1


def test_budget_is_a_ratio_of_requests_with_a_burst() -> None:
    hedger = Hedger(HedgePolicy(budget_ratio=0.1, burst=2.0))
    assert hedger.try_acquire()
    assert hedger.try_acquire()
    assert not hedger.try_acquire()
    granted = 0
    for _ in range(1000):
        hedger.on_request()
        granted += hedger.try_acquire()
    assert 99 <= granted <= 101  # about 10% of the requests


def _hedging_forwarder(
    pool: FakePool, hedges: list[str], outliers: OutlierDetector | None = None
) -> Forwarder:
    hedger = Hedger(HedgePolicy(min_samples=5, min_delay_s=0.005))
    for _ in range(5):
        hedger.observe("iris", 0.01)
    return Forwarder(
        pool,  # type: ignore[arg-type]
        max_inflight_per_worker=100,
        max_attempts=3,
        hedger=hedger,
        outliers=outliers,
        on_hedge=hedges.append,
    )


@sync
async def test_a_slow_forward_is_hedged_first_answer_wins_loser_cancelled() -> None:
    stuck = FakeCall(delay_s=30.0)
    fast = FakeCall(delay_s=0.001)
    pool = FakePool(FakeWorker("stuck", Coalescer(stuck)), FakeWorker("fast", Coalescer(fast)))
    pool.workers[1].coalescer.inflight = 50  # the router prefers "stuck" for the first try
    hedges: list[str] = []
    clock_s = time.monotonic()
    outliers = OutlierDetector(
        OutlierPolicy(consecutive_slow=1, latency_floor_s=0.001), time.monotonic
    )
    outliers.set_healthy(["stuck", "fast"])
    outliers.on_success("stuck", 0.001)
    forwarder = _hedging_forwarder(pool, hedges, outliers)
    answer = await asyncio.wait_for(forwarder.forward(HEADER, b"r", clock_s + 5.0), 2.0)
    assert answer == b"ok:r"
    assert hedges == ["iris"]
    await asyncio.sleep(0)
    assert pool.workers[0].coalescer.inflight == 0  # the loser's call was cancelled
    assert outliers.is_ejected("stuck")  # abandoned far past its latency: a slow strike


@sync
async def test_no_hedge_when_the_deadline_leaves_no_time() -> None:
    slow = FakeCall(delay_s=0.03)
    pool = FakePool(FakeWorker("a", Coalescer(slow)), FakeWorker("b", Coalescer(slow)))
    hedges: list[str] = []
    forwarder = _hedging_forwarder(pool, hedges)
    answer = await forwarder.forward(HEADER, b"r", time.monotonic() + 0.012)
    assert answer == b"ok:r"
    assert hedges == []


@sync
async def test_a_failed_hedge_waits_for_the_first_call() -> None:
    slow = FakeCall(delay_s=0.05)
    broken = FakeCall(
        delay_s=0.0,
        answer=lambda r: ForwardOutcome(ErrorCode.UNAVAILABLE, message="gone", transport=True),
    )
    pool = FakePool(FakeWorker("slow", Coalescer(slow)), FakeWorker("broken", Coalescer(broken)))
    pool.workers[1].coalescer.inflight = 50
    hedges: list[str] = []
    answer = await _hedging_forwarder(pool, hedges).forward(HEADER, b"r", None)
    assert answer == b"ok:r"
    assert hedges == ["iris"]
    assert len(broken.batches) == 1


@sync
async def test_a_single_replica_is_waited_for_and_its_answer_still_reported() -> None:
    slow = FakeCall(delay_s=0.03)  # well past the hedge delay (10 ms)
    pool = FakePool(FakeWorker("only", Coalescer(slow)))
    hedges: list[str] = []
    outliers = OutlierDetector(OutlierPolicy(latency_floor_s=0.001), time.monotonic)
    outliers.set_healthy(["only"])
    forwarder = _hedging_forwarder(pool, hedges, outliers)
    assert await forwarder.forward(HEADER, b"r", time.monotonic() + 5.0) == b"ok:r"
    assert hedges == []
    assert len(slow.batches) == 1
    assert outliers.slow_threshold_s("only") >= 0.03 * 10  # its latency was observed
