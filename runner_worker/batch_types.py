"""What a batcher is configured with and what it reports: knobs, batch reports, observer."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

__all__ = [
    "BatchPolicy",
    "BatchReport",
    "BatchObserver",
    "BatchTiming",
    "BatchTracer",
    "NullObserver",
]


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    """Knobs of one batcher (per model method)."""

    batchable: bool = True
    batch_dim: tuple[int, int] = (0, 0)
    max_batch_size: int = 64
    max_latency_s: float = 1.0
    max_queue_size: int = 1024
    max_inflight_batches: int = 1
    adaptive: bool = True


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What one formed batch did (for metrics and statistics), reported once per batch.

    A batch that fails is bisected and its halves rerun; the report still comes once, with
    the rows, requests and queue waits of the batch as formed, the time summed over every
    model execution it took (``executions``), ``ok`` only if no execution failed, and how many
    rows and requests got outputs (``answered_*``, set by the batcher; a consumer may take
    ``rows``/``requests`` for them when ``ok``).
    """

    rows: int
    requests: int
    queue_wait_s: tuple[float, ...]  # one per request (a split request counts once)
    input_s: float
    infer_s: float
    output_s: float
    ok: bool
    executions: int = 1
    answered_rows: int = 0
    answered_requests: int = 0


class BatchObserver(Protocol):
    """Receives the batcher's events; implemented by the worker's metrics/statistics."""

    def on_shed(self, reason: str) -> None: ...
    def on_rejected(self, reason: str) -> None: ...
    def on_batch(self, report: BatchReport) -> None: ...


@dataclasses.dataclass(frozen=True)
class BatchTiming:
    """When one formed batch ran, for tracing (built only when a request in it is traced)."""

    traces: tuple[Any, ...]  # each request's opaque trace handle (None: not traced)
    enqueued_s: tuple[float, ...]  # time.monotonic() per request
    dispatched_s: float  # time.monotonic()
    started_s: float  # time.perf_counter() when the first execution began
    ended_s: float  # time.perf_counter() when the last one ended
    report: BatchReport  # rows, and input/infer/output time summed over executions


class BatchTracer(Protocol):
    """Turns a batch's timing into spans (runner_worker/tracing.py); optional."""

    def on_batch(self, timing: BatchTiming) -> None: ...


class NullObserver:
    """Ignores every event (a batcher nobody watches)."""

    def on_shed(self, reason: str) -> None:
        pass

    def on_rejected(self, reason: str) -> None:
        pass

    def on_batch(self, report: BatchReport) -> None:
        pass
