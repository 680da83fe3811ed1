"""Coalescing forwards per worker, and the forwarder's retry rules, with a fake transport."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time

import pytest

from api_gateway.coalescer import Coalescer, ForwardOutcome
from api_gateway.forwarder import Forwarder
from api_gateway.header import RequestHeader
from protos.errors import DeadlineExceeded, ErrorCode, InvalidArgument, NotFound, Unavailable


def sync(fn):
    """Run an async test in a fresh event loop (no pytest-asyncio needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class FakeCall:
    """A batch call that records its batches and answers after `delay_s`."""

    def __init__(self, delay_s: float = 0.01, answer=None) -> None:
        self.batches: list[list[bytes]] = []
        self.delay_s = delay_s
        self.answer = answer or (lambda req: ForwardOutcome(None, b"ok:" + req))

    async def __call__(self, items, timeout_s):
        self.batches.append([req for req, *_ in items])
        await asyncio.sleep(self.delay_s)
        return [self.answer(req) for req, *_ in items]


@sync
async def test_concurrent_requests_coalesce_while_a_call_is_in_flight() -> None:
    call = FakeCall()
    coalescer = Coalescer(call, max_items=100, max_regroup_hold_s=0.0)
    futures = [coalescer.submit(b"%d" % i, None) for i in range(10)]
    assert coalescer.inflight == 10
    results = await asyncio.gather(*futures)
    assert [r.payload for r in results] == [b"ok:%d" % i for i in range(10)]
    assert [len(b) for b in call.batches] == [10]  # all queued in the same loop turn
    assert coalescer.inflight == 0
    first = coalescer.submit(b"a", None)
    await asyncio.sleep(0)  # the first call is now in flight
    rest = [coalescer.submit(b"b%d" % i, None) for i in range(5)]
    await asyncio.gather(first, *rest)
    assert [len(b) for b in call.batches[1:]] == [1, 5]


@sync
async def test_callers_answered_together_are_regrouped_into_the_next_call() -> None:
    # a 200 ms call allows a 100 ms regroup hold (half the call): room for the 8 returns'
    # 1 ms sleeps on a busy machine (with 20 ms calls the 10 ms hold was missed in CI)
    call = FakeCall(delay_s=0.2)
    coalescer = Coalescer(call, max_items=100, max_regroup_hold_s=0.5)
    await asyncio.gather(*(coalescer.submit(b"%d" % i, None) for i in range(8)))
    # the 8 answered callers come back one by one: held (bounded) until all 8 are queued
    returning = []
    for i in range(8):
        returning.append(coalescer.submit(b"r%d" % i, None))
        await asyncio.sleep(0.001)
    await asyncio.gather(*returning)
    assert [len(b) for b in call.batches] == [8, 8]


@sync
async def test_a_lone_caller_is_never_held() -> None:
    call = FakeCall(delay_s=0.02)
    coalescer = Coalescer(call, max_items=100, max_regroup_hold_s=0.5)
    for i in range(3):
        started_s = time.monotonic()
        await coalescer.submit(b"%d" % i, None)
        assert time.monotonic() - started_s < 0.2  # the call's 20 ms, never the 0.5 s hold
    assert [len(b) for b in call.batches] == [1, 1, 1]


@sync
async def test_big_requests_go_as_their_own_calls_beside_the_queue() -> None:
    call = FakeCall(delay_s=0.02)
    solo: list[bytes] = []

    async def solo_call(request: bytes, timeout_s: float, traceparent: str) -> ForwardOutcome:
        solo.append(request)
        await asyncio.sleep(0.02)
        return ForwardOutcome(None, b"solo:" + request[:1])

    coalescer = Coalescer(call, max_items=100, solo_call=solo_call, solo_min_bytes=1000)
    big = [coalescer.submit(b"B" * 1000, None) for _ in range(3)]
    small = [coalescer.submit(b"s%d" % i, None) for i in range(4)]
    assert coalescer.inflight == 7
    results = await asyncio.gather(*big, *small)
    assert [r.payload for r in results[:3]] == [b"solo:B"] * 3
    assert [r.payload for r in results[3:]] == [b"ok:s%d" % i for i in range(4)]
    assert len(solo) == 3
    assert [len(b) for b in call.batches] == [4]
    assert coalescer.inflight == 0


@sync
async def test_max_items_splits_batches() -> None:
    call = FakeCall()
    coalescer = Coalescer(call, max_items=4)
    await asyncio.gather(*(coalescer.submit(b"x", None) for _ in range(10)))
    assert [len(b) for b in call.batches] == [4, 4, 2]


@sync
async def test_calls_carry_whole_worker_batches_when_more_than_one_is_queued() -> None:
    call = FakeCall(delay_s=0.02)
    coalescer = Coalescer(call, max_items=100, max_regroup_hold_s=0.0)
    coalescer.full_call_items = 4
    first = coalescer.submit(b"first", None)
    await asyncio.sleep(0)  # the first call is in flight; 10 queue behind it
    rest = [coalescer.submit(b"%d" % i, None) for i in range(10)]
    results = await asyncio.gather(first, *rest)
    assert [r.payload for r in results[1:]] == [b"ok:%d" % i for i in range(10)]
    # 10 queued: 8 (two whole batches of 4), then the 2 left (no more than one batch: all)
    assert [len(b) for b in call.batches] == [1, 8, 2]
    coalescer.full_call_items = 16  # up to one full batch queued: a call takes everything
    first = coalescer.submit(b"first", None)
    await asyncio.sleep(0)
    await asyncio.gather(first, *(coalescer.submit(b"x", None) for _ in range(10)))
    assert [len(b) for b in call.batches[3:]] == [1, 10]


@sync
async def test_cancelled_and_expired_items_are_not_sent() -> None:
    call = FakeCall(delay_s=0.05)
    coalescer = Coalescer(call)
    first = coalescer.submit(b"first", None)
    await asyncio.sleep(0)
    cancelled = coalescer.submit(b"cancelled", None)
    expired = coalescer.submit(b"expired", time.monotonic() + 0.01)
    kept = coalescer.submit(b"kept", None)
    cancelled.cancel()
    await first
    assert (await expired).code is ErrorCode.DEADLINE_EXCEEDED
    assert (await kept).payload == b"ok:kept"
    assert call.batches == [[b"first"], [b"kept"]]
    assert coalescer.inflight == 0


@sync
async def test_call_failure_fails_every_item_without_hanging() -> None:
    async def broken(items, timeout_s):
        raise RuntimeError("boom")

    coalescer = Coalescer(broken)
    results = await asyncio.gather(*(coalescer.submit(b"x", None) for _ in range(3)))
    assert {r.code for r in results} == {ErrorCode.INTERNAL}


@sync
async def test_close_fails_queued_items_as_retryable() -> None:
    async def slow_solo(request: bytes, timeout_s: float, traceparent: str) -> ForwardOutcome:
        await asyncio.sleep(10)
        return ForwardOutcome(None, b"never")

    coalescer = Coalescer(FakeCall(delay_s=10), solo_call=slow_solo, solo_min_bytes=100)
    first = coalescer.submit(b"a", None)
    big = coalescer.submit(b"B" * 100, None)
    await asyncio.sleep(0)
    second = coalescer.submit(b"b", None)
    coalescer.close()
    for outcome in await asyncio.gather(first, big, second):
        assert outcome.code is ErrorCode.UNAVAILABLE
        assert outcome.transport
    assert coalescer.inflight == 0


@dataclasses.dataclass
class FakeWorker:
    address: str
    coalescer: Coalescer
    serving: bool = True
    described: bool = True
    ejected: bool = False

    @property
    def inflight(self) -> int:
        return self.coalescer.inflight

    def forward(self, request: bytes, deadline: float | None, traceparent: str = ""):
        return self.coalescer.submit(request, deadline, traceparent)

    def hosts(self, name: str, version: str) -> bool:
        return name == "iris"


class FakePool:
    def __init__(self, *workers: FakeWorker) -> None:
        self.workers = list(workers)


def _forwarder(pool: FakePool, retries: list[str]) -> Forwarder:
    return Forwarder(pool, max_inflight_per_worker=100, max_attempts=3, on_retry=retries.append)  # type: ignore[arg-type]


HEADER = RequestHeader("iris", "", "1")


@sync
async def test_unavailable_is_retried_on_another_replica() -> None:
    dead = FakeWorker(
        "dead",
        Coalescer(
            FakeCall(
                answer=lambda r: ForwardOutcome(
                    ErrorCode.UNAVAILABLE, message="gone", transport=True
                )
            )
        ),
    )
    alive = FakeWorker("alive", Coalescer(FakeCall()))
    retries: list[str] = []
    forwarder = _forwarder(FakePool(dead, alive), retries)
    results = await asyncio.gather(*(forwarder.forward(HEADER, b"r", None) for _ in range(20)))
    assert results == [b"ok:r"] * 20
    assert retries
    assert set(retries) == {"iris"}


@sync
async def test_all_replicas_down_is_unavailable() -> None:
    answer = lambda r: ForwardOutcome(ErrorCode.UNAVAILABLE, message="gone")  # noqa: E731
    pool = FakePool(
        FakeWorker("a", Coalescer(FakeCall(answer=answer))),
        FakeWorker("b", Coalescer(FakeCall(answer=answer))),
    )
    with pytest.raises(Unavailable, match="2 tried"):
        await _forwarder(pool, []).forward(HEADER, b"r", None)


@pytest.mark.parametrize(
    ("code", "error"),
    [(ErrorCode.INVALID_ARGUMENT, InvalidArgument), (ErrorCode.NOT_FOUND, NotFound)],
)
@sync
async def test_request_errors_are_returned_not_retried(code: ErrorCode, error: type) -> None:
    bad = FakeCall(answer=lambda r: ForwardOutcome(code, message="worker says no"))
    pool = FakePool(FakeWorker("a", Coalescer(bad)), FakeWorker("b", Coalescer(bad)))
    retries: list[str] = []
    with pytest.raises(error, match="worker says no"):
        await _forwarder(pool, retries).forward(HEADER, b"r", None)
    assert retries == []
    assert len(bad.batches) == 1


@sync
async def test_passed_deadline_is_deadline_exceeded() -> None:
    pool = FakePool(FakeWorker("a", Coalescer(FakeCall())))
    with pytest.raises(DeadlineExceeded):
        await _forwarder(pool, []).forward(HEADER, b"r", time.monotonic() - 1)


@sync
async def test_big_requests_are_not_batched_past_the_byte_cap() -> None:
    call = FakeCall()
    coalescer = Coalescer(call, max_batch_bytes=10)
    sizes = [4, 4, 4, 20, 1]
    await asyncio.gather(*(coalescer.submit(b"x" * n, None) for n in sizes))
    assert [[len(r) for r in batch] for batch in call.batches] == [[4, 4], [4], [20], [1]]


@sync
async def test_call_is_cancelled_when_every_caller_cancelled() -> None:
    cancelled = asyncio.Event()
    calls = []

    async def slow_first(items, timeout_s):
        calls.append(len(items))
        if len(calls) == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return [ForwardOutcome(None, b"ok")] * len(items)

    coalescer = Coalescer(slow_first)
    futures = [coalescer.submit(b"x", None) for _ in range(3)]
    await asyncio.sleep(0.01)
    for future in futures:
        future.cancel()
    await asyncio.wait_for(cancelled.wait(), 2)
    assert (await asyncio.wait_for(coalescer.submit(b"y", None), 2)).payload == b"ok"
    assert calls == [3, 1]
    assert coalescer.inflight == 0
