"""The fastest recent answer per model, so the gateway refuses what cannot possibly finish.

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

__all__ = ["LatencyFloor"]


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
