"""Hedged forwards (pure policy, no grpc): when to send a second copy, and how many we may send.

Algorithm (after "The Tail at Scale", Dean and Barroso, and Envoy's hedge policy):

1. Per model, the latencies of its last ``window`` successful forwards are kept; the hedge
   delay is their ``quantile`` (p95), never below ``min_delay_s``. Until ``min_samples``
   answers are known, nothing is hedged (no evidence of what "slow" is).
2. A forward still unanswered after the delay is sent once more, to another replica, if the
   request's deadline leaves at least one more delay of time (a hedge that cannot answer in
   time only adds load). The first answer wins; the other call is cancelled (its worker
   stops on the cancellation).
3. A budget bounds the extra load: every request earns ``budget_ratio`` of a token (0.1:
   at most about 10% extra forwards in the long run), tokens are capped at ``burst``; a hedge
   spends one, and without one nothing is hedged.

Failure modes: under overload every forward is slow, p95 rises with it and the budget caps
the copies, so hedging cannot double the load; a hung worker holds requests for one delay
(p95) before their copies go out, and while it stays in rotation (until health or outlier
ejection takes it out, about a second) the budget may run dry, after which its requests wait
for the forwarder's normal retry; a model whose latency is bimodal (cache hits and misses)
hedges its slow mode up to the budget, which is the point.
"""

from __future__ import annotations

import collections
import dataclasses

__all__ = ["HedgePolicy", "Hedger"]

_RECOMPUTE_EVERY = 16  # successes between two recomputations of a model's hedge delay


@dataclasses.dataclass(frozen=True)
class HedgePolicy:
    """The knobs of hedging (gateway settings ``hedge_*``)."""

    enabled: bool = True
    quantile: float = 0.95
    min_delay_s: float = 0.005
    window: int = 256
    min_samples: int = 20
    budget_ratio: float = 0.1
    burst: float = 10.0


class Hedger:
    """Latency windows per model and the hedge token budget (see module doc)."""

    def __init__(self, policy: HedgePolicy) -> None:
        self.policy = policy
        self._latencies: dict[str, collections.deque[float]] = {}
        self._delays: dict[str, float | None] = {}
        self._seen: dict[str, int] = {}
        self._tokens = policy.burst

    def observe(self, model: str, latency_s: float) -> None:
        """One successful forward of ``model`` took ``latency_s``."""
        window = self._latencies.get(model)
        if window is None:
            window = self._latencies[model] = collections.deque(maxlen=self.policy.window)
        window.append(latency_s)
        self._seen[model] = seen = self._seen.get(model, 0) + 1
        if seen % _RECOMPUTE_EVERY == 0 or len(window) <= self.policy.min_samples:
            self._delays.pop(model, None)  # recomputed lazily, not a sort per request

    def delay_s(self, model: str) -> float | None:
        """How long a forward of ``model`` runs before it is hedged; None: do not hedge."""
        if not self.policy.enabled:
            return None
        if model in self._delays:
            return self._delays[model]
        window = self._latencies.get(model)
        delay: float | None = None
        if window is not None and len(window) >= self.policy.min_samples:
            ordered = sorted(window)
            index = min(int(self.policy.quantile * len(ordered)), len(ordered) - 1)
            delay = max(ordered[index], self.policy.min_delay_s)
        self._delays[model] = delay
        return delay

    def on_request(self) -> None:
        """A request arrived: it earns its share of a hedge."""
        self._tokens = min(self._tokens + self.policy.budget_ratio, self.policy.burst)

    def try_acquire(self) -> bool:
        """Spend one hedge token; False when the budget is spent."""
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
