"""What the gateway knows of a model's speed, so it refuses at once what cannot finish in time.

Two estimates, both per model and both learned from answers this gateway saw:

``ServiceRate``: answers per second, the larger of the rate over the last second and over
the last ten. With ``n`` of the model's requests in flight here, a new one waits about
``(n + 1) / rate`` (Little's law; under overload the rate is the capacity and in-flight
requests queue in the gateway's coalescer and the workers' batchers). The plane refuses a
request whose remaining deadline is shorter than that plus one service time
(RESOURCE_EXHAUSTED "estimated wait X ms vs remaining deadline Y ms", reason
``deadline_unmeetable``), so in flight stays near ``capacity x deadline`` and what is admitted
can finish. Below capacity ``n / rate`` is the current latency, so nothing is refused.

Why two windows: the one-second rate alone collapses with the answers. At 10x overload on a
CPU-starved machine, once one second's answers fell below ``min_answers`` there was no
estimate, everything was admitted, everything timed out and the rate never came back (2-7%
goodput); and while traffic moves off a draining worker the answers stall for a moment, which
read as a tiny rate and refused requests that would have finished. The ten-second rate
remembers the capacity through both. No estimate until ``min_answers`` came within the ten
seconds, spread over at least two: a starting load's first answers are few and slow (32
clients at once, 16 answers in the first second read as 16 answers/s and a 2 s wait, which
refused one request in the chaos suite's SIGSTOP scenario).

Failure modes: a rate measured while the load was light underestimates capacity for up to a
second when load jumps (it refuses a little too much, then the rate catches up); after a real
loss of capacity (a worker gone) the ten-second rate overestimates it for up to ten seconds,
so the gateway admits too much and the workers' own admission refuses the excess (slower:
their refusals come back with the forward call); requests of very different sizes to one
model share one rate.

The fastest recent answer (``LatencyFloor``):

A request whose remaining deadline is already shorter than every one of the model's recent
successful answers (end to end through this gateway) will time out wherever it goes: forwarding
it costs a worker slot and a queue place that a request that can make it needs. The plane
refuses it at once with RESOURCE_EXHAUSTED (reason ``deadline_unmeetable``). The floor is the
minimum over the last ``window`` successes, so one lucky answer cannot set it for long, and a
model that got slower raises it within ``window`` answers. No floor until the first success.
Failure mode: after the model gets much faster, requests between the new and the old floor
are refused until ``window`` faster answers came (they keep coming from clients with longer
deadlines), so the window is short.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

__all__ = ["LatencyFloor", "ServiceRate", "estimated_wait_s"]

# answers between two expiries on the observe path: at most this many stale stamps linger
_EXPIRE_EVERY = 64


class LatencyFloor:
    """Per model: the minimum of the last ``window`` successful end-to-end durations."""

    def __init__(self, window: int = 64) -> None:
        self._window = window
        self._recent: dict[str, collections.deque[float]] = {}
        self._min: dict[str, float] = {}

    def observe(self, model: str, seconds: float) -> None:
        """One successful answer for ``model`` that took ``seconds``."""
        recent = self._recent.get(model)
        if recent is None:
            recent = self._recent[model] = collections.deque(maxlen=self._window)
        dropped = recent[0] if len(recent) == self._window else None
        recent.append(seconds)
        low = self._min.get(model)
        if low is None or seconds <= low:
            self._min[model] = seconds
        elif dropped is not None and dropped <= low:
            self._min[model] = min(recent)

    def floor_s(self, model: str) -> float | None:
        """The fastest recent answer for ``model``, or None before any."""
        return self._min.get(model)


class ServiceRate:
    """Per model: answers per second, the larger of the last ``window_s`` and the last
    ``memory_s`` (module doc: a stall must not read as "no estimate")."""

    def __init__(
        self,
        window_s: float = 1.0,
        min_answers: int = 16,
        clock: Callable[[], float] = time.monotonic,
        memory_s: float = 10.0,
        min_span_s: float = 2.0,
    ) -> None:
        self._window_s = window_s
        self._memory_s = max(memory_s, window_s)
        self._min_span_s = min(min_span_s, self._memory_s)
        self._min_answers = min_answers
        self._clock = clock
        self._recent: dict[str, collections.deque[float]] = {}  # answers in the last window_s
        self._done: dict[str, collections.deque[float]] = {}  # answers in the last memory_s

    def observe(self, model: str) -> None:
        """A request of ``model`` was answered (by a worker: OK or the model's own error)."""
        done = self._done.get(model)
        if done is None:
            done = self._done[model] = collections.deque()
            self._recent[model] = collections.deque()
        recent = self._recent[model]
        now_s = self._clock()
        done.append(now_s)
        recent.append(now_s)
        if not len(done) % _EXPIRE_EVERY:  # bounded memory; ``rate_per_s`` expires for itself
            self._expire(done, recent, now_s)

    def _expire(
        self, done: collections.deque[float], recent: collections.deque[float], now_s: float
    ) -> None:
        while done and done[0] < now_s - self._memory_s:
            done.popleft()
        while recent and recent[0] < now_s - self._window_s:
            recent.popleft()

    def rate_per_s(self, model: str, now_s: float | None = None) -> float | None:
        """Answers per second lately, or None while fewer than ``min_answers`` came in the
        longer memory or they span less than ``min_span_s`` (a model warming up, or idle
        that long: its first answers are slow and few, and would read as a low capacity).
        ``now_s``: the clock's reading, when the caller has one."""
        done = self._done.get(model)
        if not done:
            return None
        recent = self._recent[model]
        if now_s is None:
            now_s = self._clock()
        self._expire(done, recent, now_s)
        if len(done) < self._min_answers or now_s - done[0] < self._min_span_s:
            return None
        span_s = min(self._memory_s, max(now_s - done[0], self._window_s))
        return max(len(recent) / self._window_s, len(done) / span_s)


def estimated_wait_s(inflight: int, rate_per_s: float | None) -> float:
    """Expected seconds until one more request is answered: ``(inflight + 1) / rate``."""
    if rate_per_s is None or rate_per_s <= 0.0:
        return 0.0 if rate_per_s is None else math.inf
    return (inflight + 1) / rate_per_s
