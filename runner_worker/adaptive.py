"""Online estimates the adaptive batcher decides with: batch cost and arrival rate.

``BatchCostModel`` fits ``cost(n) = fixed_s + per_row_s * n`` to observed batch executions by
exponentially weighted least squares (recent batches count more, so it follows load and
thermal drift). ``ArrivalRate`` keeps an exponentially weighted mean of the gap between
arrivals and of the rows each brings. ``hold_time_s`` turns both into the wait that pays.
"""

from __future__ import annotations

__all__ = ["BatchCostModel", "ArrivalRate", "hold_time_s", "SILENCE_GAPS"]

# a hold ends once no request arrived for this many burst gaps (the stream has stopped)
SILENCE_GAPS = 3.0


class BatchCostModel:
    """Exponentially weighted least-squares fit of batch execution time against rows."""

    def __init__(self, decay: float = 0.98) -> None:
        self._decay = decay
        self._w = self._n = self._t = self._nn = self._nt = 0.0
        self.fixed_s = 0.0
        self.per_row_s = 0.0
        # True once at least one batch has been timed (an attribute: read per queued request)
        self.known = False

    def observe(self, rows: int, seconds: float) -> None:
        """Add one batch of ``rows`` rows that took ``seconds`` to run."""
        d = self._decay
        self._w = self._w * d + 1.0
        self._n = self._n * d + rows
        self._t = self._t * d + seconds
        self._nn = self._nn * d + rows * rows
        self._nt = self._nt * d + rows * seconds
        self.known = True
        mean_n, mean_t = self._n / self._w, self._t / self._w
        var_n = self._nn / self._w - mean_n * mean_n
        if var_n > 1e-6 * max(1.0, mean_n * mean_n):
            slope = (self._nt / self._w - mean_n * mean_t) / var_n
            self.per_row_s = min(max(slope, 0.0), mean_t / max(mean_n, 1.0))
        else:
            # one batch size only: keep the last slope, bounded by what we see
            self.per_row_s = min(self.per_row_s, mean_t / max(mean_n, 1.0))
        self.fixed_s = max(mean_t - self.per_row_s * mean_n, 0.0)

    def predict_s(self, rows: int) -> float:
        """Expected execution time of a batch of ``rows`` rows (0 before any observation:
        both coefficients start at 0)."""
        return self.fixed_s + self.per_row_s * rows


class ArrivalRate:
    """Exponentially weighted mean gap between arrivals, rows per arrival, and burst gaps.

    A *burst gap* is a gap ending in an arrival that found the batcher busy (work queued or
    running): how fast requests stream in under load. Closed-loop clients stop arriving once
    all of them wait, so a silence of a few burst gaps means nobody else is coming.
    """

    def __init__(self, alpha: float = 0.1) -> None:
        self._alpha = alpha
        self.last_s: float | None = None
        self.mean_gap_s: float | None = None
        self.burst_gap_s: float | None = None
        self.mean_rows = 1.0

    def observe(self, now_s: float, rows: int, busy: bool = False) -> None:
        """Record an arrival of ``rows`` rows at ``now_s``; ``busy``: work was pending."""
        a = self._alpha
        self.mean_rows += a * (rows - self.mean_rows)
        if self.last_s is not None:
            gap = max(now_s - self.last_s, 0.0)
            self.mean_gap_s = _ewma(self.mean_gap_s, gap, a)
            if busy:
                self.burst_gap_s = _ewma(self.burst_gap_s, gap, a)
        self.last_s = now_s

    @property
    def rows_per_s(self) -> float:
        """Estimated arrival rate in rows per second (0 until two arrivals)."""
        if not self.mean_gap_s:
            return 0.0 if self.mean_gap_s is None else float("inf")
        return self.mean_rows / self.mean_gap_s


def _ewma(mean: float | None, value: float, alpha: float) -> float:
    return value if mean is None else mean + alpha * (value - mean)


def hold_time_s(queued_rows: int, cost: BatchCostModel, arrivals: ArrivalRate) -> float:
    """How long, in total, a batch of ``queued_rows`` rows is worth holding for more rows.

    Holding ``d`` seconds lets ``m = rate * d`` more rows join. Compared with running now and
    running the newcomers as a second batch, the sum of completion times improves by
    ``m * fixed - (k + m) * d - per_row * k * m``: the newcomers skip a second fixed cost, the
    ``k`` queued rows wait ``d`` more, and the newcomers no longer jump ahead of the queued
    rows' per-row work. That is positive while ``d < fixed - per_row * k - k / rate``. A lone
    client (rate below one row per batch time) gets no hold; under load the hold shrinks as
    rows pile up. 0 while the cost model or the arrival rate is unknown.
    """
    rate = arrivals.rows_per_s
    if not cost.known or rate <= 0.0:
        return 0.0
    hold = cost.fixed_s - cost.per_row_s * queued_rows - queued_rows / rate
    return min(max(hold, 0.0), cost.fixed_s)
