"""When to restart a crashed process, and when to stop trying (pure, no processes, no clock).

Used by ``runnerfleet.supervisor`` for ``runnerfleet cluster up``. A child that exits without
being asked to is restarted after an exponential back-off (``base_backoff_s``, doubling, capped
at ``max_backoff_s``). A crash loop is ``max_restarts`` restarts within ``window_s``: then the
supervisor stops restarting that child and reports it (cluster up exits non-zero if it was the
gateway). A child that ran ``healthy_after_s`` before it crashed starts its back-off afresh.

Failure modes: a process that crashes just after ``healthy_after_s`` every time is restarted
forever at the base back-off (the window still counts it: ``max_restarts`` in ``window_s``
stops it); a restarted worker keeps its port, so one whose port was taken meanwhile crashes at
bind and ends in the crash-loop verdict rather than moving.
"""

from __future__ import annotations

import collections
import dataclasses

__all__ = ["RestartPolicy", "RestartTracker"]


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    """Back-off and crash-loop limits for one supervised child."""

    base_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    max_restarts: int = 5
    window_s: float = 60.0
    healthy_after_s: float = 30.0


class RestartTracker:
    """One child's restart history: ``next_delay_s(now_s, ran_s)`` or None (crash loop)."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.restarts = 0  # restarts so far (all time)
        self._recent: collections.deque[float] = collections.deque()
        self._streak = 0  # crashes in a row without a healthy run

    def next_delay_s(self, now_s: float, ran_s: float) -> float | None:
        """The back-off before restarting a child that crashed at ``now_s`` after ``ran_s``.

        None means a crash loop: ``max_restarts`` restarts already happened within
        ``window_s``; do not restart again.
        """
        while self._recent and now_s - self._recent[0] > self.policy.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.policy.max_restarts:
            return None
        if ran_s >= self.policy.healthy_after_s:
            self._streak = 0
        delay_s = min(self.policy.base_backoff_s * 2**self._streak, self.policy.max_backoff_s)
        self._streak += 1
        self._recent.append(now_s)
        self.restarts += 1
        return delay_s
