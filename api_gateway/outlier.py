"""Outlier ejection (pure policy, no grpc, no clock of its own): which workers sit out, how long.

Modelled on Envoy's outlier detection, fed by the forwarder with one report per finished or
abandoned forward:

1. Consecutive faults: ``consecutive_faults`` forwards in a row that failed as a worker fault
   (a call that broke in transport, UNAVAILABLE, or DEADLINE_EXCEEDED: a worker that lets a
   deadline pass is at fault, the request was not) eject the worker, reason
   ``consecutive_errors``.
2. Latency outliers: a forward slower than ``latency_multiple`` times the worker's own recent
   latency (an exponentially weighted mean of its successful forwards, never below
   ``latency_floor_s``) is a slow strike; a forward abandoned because a hedge to another
   replica answered first counts with the time it had run. ``consecutive_slow`` strikes in a
   row eject it, reason ``latency``. A normal-speed success clears both streaks.
3. Ejection time grows with repeated ejections: ``base_ejection_s`` times the number of
   times the worker was ejected lately, capped by ``max_ejection_s``; the count is forgotten
   after ``max_ejection_s`` of good behaviour since the last return.
4. Never eject the last: at most ``max_ejection_percent`` of the healthy hosts (those the pool
   reports SERVING), rounded down, and always fewer than all of them, are out at once. A
   worker that would be ejected beyond that limit stays in (its streak is kept, so it is
   ejected as soon as room appears).
5. Probed back in: when the ejection time is over the worker takes traffic again on
   probation; its first fault (or slow strike) ejects it again at once, with the longer time.

Failure modes: a cluster-wide slowdown (overload, a noisy neighbour) raises every worker's
latency together, which the per-worker mean follows, so nobody is ejected for it; under
overload deadlines expire everywhere and DEADLINE_EXCEEDED streaks can eject a worker that is
only busy, bounded by the percentage, and it returns after the ejection time; a worker that
fails only some requests (one bad model among several) never builds a streak and is not
ejected (the router's retries cover it); an ejected worker gets no traffic, so it is judged
again only after it returns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

__all__ = ["OutlierPolicy", "OutlierDetector", "EJECTION_REASONS"]

EJECTION_REASONS = ("consecutive_errors", "latency", "health")
_EWMA_WEIGHT = 0.1  # weight of the newest success in a worker's recent latency


@dataclasses.dataclass(frozen=True)
class OutlierPolicy:
    """The knobs of outlier ejection (gateway settings ``outlier_*``)."""

    consecutive_faults: int = 3
    consecutive_slow: int = 3
    latency_multiple: float = 10.0
    latency_floor_s: float = 0.05
    base_ejection_s: float = 1.0
    max_ejection_s: float = 30.0
    max_ejection_percent: float = 50.0


@dataclasses.dataclass
class _State:
    faults: int = 0
    slow: int = 0
    recent_latency_s: float | None = None
    ejected_until_s: float | None = None
    probation: bool = False
    times_ejected: int = 0
    returned_at_s: float = 0.0


class OutlierDetector:
    """Per-worker fault and latency streaks, and the ejections they cause (see module doc).

    ``clock`` gives monotonic seconds (tests pass a fake one); ``on_eject(address, reason,
    duration_s)`` and ``on_return(address)`` are told about every change (metrics, logs);
    ``on_return`` runs when a query first finds the ejection over.
    """

    def __init__(
        self,
        policy: OutlierPolicy,
        clock: Callable[[], float],
        *,
        on_eject: Callable[[str, str, float], None] = lambda address, reason, duration_s: None,
        on_return: Callable[[str], None] = lambda address: None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_eject = on_eject
        self._on_return = on_return
        self._states: dict[str, _State] = {}
        self._healthy: frozenset[str] = frozenset()

    # -- membership -----------------------------------------------------------------------

    def set_healthy(self, addresses: Iterable[str]) -> None:
        """The workers the pool reports SERVING now (the base of the ejection percentage)."""
        self._healthy = frozenset(addresses)

    def forget(self, address: str) -> None:
        """A worker left the pool."""
        self._states.pop(address, None)

    # -- reports from the forwarder -------------------------------------------------------

    def on_success(self, address: str, latency_s: float) -> None:
        """A forward answered (any answer the worker gave on purpose) after ``latency_s``."""
        state = self._state(address)
        if self._is_slow(state, latency_s):
            self._strike_slow(address, state)
            return
        state.faults = state.slow = 0
        state.probation = False
        previous = state.recent_latency_s
        state.recent_latency_s = (
            latency_s if previous is None else previous + _EWMA_WEIGHT * (latency_s - previous)
        )
        if state.times_ejected and self._clock() - state.returned_at_s > self.policy.max_ejection_s:
            state.times_ejected = 0

    def on_fault(self, address: str) -> None:
        """A forward failed as a worker fault (transport, UNAVAILABLE, DEADLINE_EXCEEDED)."""
        state = self._state(address)
        state.faults += 1
        if state.probation or state.faults >= self.policy.consecutive_faults:
            self._eject(address, state, "consecutive_errors")

    def on_abandoned(self, address: str, elapsed_s: float) -> None:
        """A forward was cancelled after ``elapsed_s`` because a hedge answered first."""
        state = self._state(address)
        if self._is_slow(state, elapsed_s):
            self._strike_slow(address, state)

    def slow_threshold_s(self, address: str) -> float:
        """How long a forward to ``address`` may run before it counts as a slow strike."""
        state = self._state(address)
        recent_s = state.recent_latency_s or 0.0
        return max(self.policy.latency_floor_s, recent_s * self.policy.latency_multiple)

    # -- queries --------------------------------------------------------------------------

    def is_ejected(self, address: str) -> bool:
        """Whether ``address`` sits out now; an ejection whose time is over ends here."""
        state = self._states.get(address)
        if state is None or state.ejected_until_s is None:
            return False
        if self._clock() < state.ejected_until_s:
            return True
        state.ejected_until_s = None
        state.probation = True
        state.faults = state.slow = 0
        state.returned_at_s = self._clock()
        self._on_return(address)
        return False

    def ejected(self) -> list[str]:
        """The addresses ejected now."""
        return [address for address in list(self._states) if self.is_ejected(address)]

    # -- internals ------------------------------------------------------------------------

    def _state(self, address: str) -> _State:
        state = self._states.get(address)
        if state is None:
            state = self._states[address] = _State()
        return state

    def _is_slow(self, state: _State, latency_s: float) -> bool:
        if state.recent_latency_s is None:
            return False  # no evidence yet of what is normal for this worker
        threshold_s = max(
            self.policy.latency_floor_s, state.recent_latency_s * self.policy.latency_multiple
        )
        return latency_s > threshold_s

    def _strike_slow(self, address: str, state: _State) -> None:
        state.slow += 1
        if state.probation or state.slow >= self.policy.consecutive_slow:
            self._eject(address, state, "latency")

    def _room_to_eject(self, address: str) -> bool:
        healthy = self._healthy | {address}
        out = sum(1 for a in healthy if a != address and self.is_ejected(a))
        allowed = math.floor(len(healthy) * self.policy.max_ejection_percent / 100.0)
        allowed = min(allowed, len(healthy) - 1)
        return out < allowed

    def _eject(self, address: str, state: _State, reason: str) -> None:
        if self.is_ejected(address) or not self._room_to_eject(address):
            return
        state.times_ejected += 1
        duration_s = min(
            self.policy.base_ejection_s * state.times_ejected, self.policy.max_ejection_s
        )
        state.ejected_until_s = self._clock() + duration_s
        state.faults = state.slow = 0
        state.probation = False
        self._on_eject(address, reason, duration_s)
