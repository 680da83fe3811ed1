"""Hold policy: how long the batcher waits for more work before it runs a batch (pure).

The batcher (mechanism) tells a ``HoldPolicy`` what happened (arrivals, finished batches) and
asks it one question when work and a free slot meet: until when to hold. The policy reads no
clock and touches no queue: times come in as arguments and the queue as a ``QueueView``, so
tests drive it with a fake clock and observed batch costs.

``AdaptiveHold`` is the worker's one hold (DESIGN.md section 5). It holds for the larger of
two gains, both from the learned cost model ``cost(n) = fixed + per_row * n``:

1. expected gain (``adaptive.hold_time_s``): the fixed cost a second batch would pay, against
   the wait the queued rows pay, at the learned arrival rate;
2. closed loop: when answered clients come back (the *turnaround*, learned online) sooner than
   a batch's fixed cost, about two turnarounds, capped at the fixed cost (merging them saves a
   whole batch; without this, batches alternate half full).

It skips the hold when as many requests are queued as were recently in the system at once
(everyone is here; the estimate forgets a past peak within about a second), when the rows
that stack with the head fill a batch, and for a lone client; it ends the hold once arrivals
fall silent for ``SILENCE_GAPS`` burst gaps (or two turnarounds before anyone came), and never
past the oldest request's latency budget less the run time of a full batch.

Failure modes: a hold never exceeds the learned fixed cost of one batch (at worst that much
added latency when the clients it waited for do not come); with one batch size only, the
fixed/per-row split cannot be learned and all cost counts as fixed, which lengthens expected-
gain holds (the silence and turnaround bounds still end them).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from runner_worker.adaptive import SILENCE_GAPS, ArrivalRate, BatchCostModel, hold_time_s

__all__ = ["QueueView", "HoldPolicy", "NoHold", "AdaptiveHold"]

# how fast the estimate of concurrent requests forgets a past peak: per arrival, and at
# least by half every _PEAK_HALF_LIFE_S, so a drop from 64 clients to 1 stops the
# closed-loop hold within about a second rather than after ~750 arrivals
_PEAK_DECAY = 0.995
_PEAK_HALF_LIFE_S = 0.1
_TURNAROUND_ALPHA = 0.2


@dataclasses.dataclass(frozen=True)
class QueueView:
    """What a hold policy sees of the queue when a batch is about to form."""

    queued: int  # requests (or chunks of split requests) waiting
    head_rows: int  # rows waiting that stack with the head (counting stops at max_batch_size)
    head_enqueued_s: float  # when the oldest waiting request arrived


class HoldPolicy(Protocol):
    """Decides the batcher's hold; fed events, asked one question."""

    def on_arrival(self, now_s: float, rows: int, *, in_system: int, busy: bool) -> None:
        """A request of ``rows`` rows arrived; ``in_system`` queued+running, ``busy``: any
        work was already queued or running before it."""

    def on_batch_done(self, now_s: float) -> None:
        """A batch finished (its callers were answered) at ``now_s``."""

    def hold_until_s(self, hold_from_s: float, now_s: float, queue: QueueView) -> float:
        """When to stop holding the batch being formed; ``<= now_s``: run it now.

        ``hold_from_s`` is when work and a free slot met (a hold counts from there)."""


class NoHold:
    """Never holds (non-batchable methods, adaptive batching off)."""

    def on_arrival(self, now_s: float, rows: int, *, in_system: int, busy: bool) -> None:
        pass

    def on_batch_done(self, now_s: float) -> None:
        pass

    def hold_until_s(self, hold_from_s: float, now_s: float, queue: QueueView) -> float:
        return hold_from_s


class AdaptiveHold:
    """The worker's adaptive hold (see the module doc); reads ``cost``, which the batcher feeds."""

    def __init__(self, cost: BatchCostModel, *, max_batch_size: int, max_latency_s: float) -> None:
        self.cost = cost
        self.arrivals = ArrivalRate()
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_s
        self.concurrency_estimate = 0.0
        self.turnaround_s: float | None = None  # batch done -> next arrival (EWMA)
        self._estimated_s = 0.0  # when the concurrency estimate was last updated
        self._completed_s: float | None = None

    def on_arrival(self, now_s: float, rows: int, *, in_system: int, busy: bool) -> None:
        decay = min(_PEAK_DECAY, 0.5 ** ((now_s - self._estimated_s) / _PEAK_HALF_LIFE_S))
        self.concurrency_estimate = max(float(in_system), self.concurrency_estimate * decay)
        self._estimated_s = now_s
        self.arrivals.observe(now_s, rows, busy)
        if self._completed_s is not None:  # first arrival since a batch finished
            gap_s = now_s - self._completed_s
            t = self.turnaround_s
            self.turnaround_s = gap_s if t is None else t + _TURNAROUND_ALPHA * (gap_s - t)
            self._completed_s = None

    def on_batch_done(self, now_s: float) -> None:
        self._completed_s = now_s

    def hold_until_s(self, hold_from_s: float, now_s: float, queue: QueueView) -> float:
        """The larger of the two gains counted from ``hold_from_s``, cut by silence."""
        burst_gap_s = self.arrivals.burst_gap_s
        last_s = self.arrivals.last_s
        if burst_gap_s is None or last_s is None:
            return hold_from_s
        if queue.queued >= self.concurrency_estimate - 0.5:
            return hold_from_s  # every client we have seen lately is already queued
        hold_s = self._hold_s(now_s, queue)
        if hold_s <= 0.0:
            return hold_from_s
        turnaround_s = self.turnaround_s
        silence_s = max(last_s, hold_from_s) + SILENCE_GAPS * burst_gap_s
        if last_s <= hold_from_s and turnaround_s is not None:
            silence_s = max(silence_s, hold_from_s + 2.0 * turnaround_s)
        return min(hold_from_s + hold_s, silence_s)

    def _hold_s(self, now_s: float, queue: QueueView) -> float:
        """Total hold worth paying for the batch being formed (0 when it should run now)."""
        if queue.head_rows >= self.max_batch_size:
            return 0.0
        hold = hold_time_s(queue.head_rows, self.cost, self.arrivals)
        turnaround_s = self.turnaround_s
        if turnaround_s is not None and turnaround_s < self.cost.fixed_s:
            # closed loop: answered clients come back sooner than a batch's fixed cost, so
            # waiting about one turnaround for them saves a whole extra batch
            hold = max(hold, min(self.cost.fixed_s, 2.0 * turnaround_s))
        if hold <= 0.0:
            return 0.0
        budget_left_s = queue.head_enqueued_s + self.max_latency_s - now_s
        room_s = budget_left_s - self.cost.predict_s(self.max_batch_size)
        return max(min(hold, room_s), 0.0)
