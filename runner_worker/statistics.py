"""Cumulative per-model-version inference statistics, as Triton's ModelStatistics reports them.

``inference_count`` counts rows, ``execution_count`` model executions (batches); every
request in a batch is charged the batch's compute durations (Triton does the same), so
``ns / count`` is a per-request mean. Updated only on the event loop thread.
"""

from __future__ import annotations

import dataclasses
import time

from runner_worker.batcher import BatchReport

__all__ = ["Duration", "BatchSizeStats", "ModelStats"]


@dataclasses.dataclass
class Duration:
    """A count of events and their total time in nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9) * count


@dataclasses.dataclass
class BatchSizeStats:
    """Executions of one batch size (rows) and their compute durations."""

    compute_input: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)
    compute_output: Duration = dataclasses.field(default_factory=Duration)


@dataclasses.dataclass
class ModelStats:
    """Statistics of one model version across all its methods."""

    name: str
    version: str
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = dataclasses.field(default_factory=Duration)
    fail: Duration = dataclasses.field(default_factory=Duration)
    queue: Duration = dataclasses.field(default_factory=Duration)
    compute_input: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)
    compute_output: Duration = dataclasses.field(default_factory=Duration)
    batch_stats: dict[int, BatchSizeStats] = dataclasses.field(default_factory=dict)

    def on_batch(self, report: BatchReport) -> None:
        """Account one formed batch: the rows and requests it answered (none: not counted)."""
        rows = report.rows if report.ok else report.answered_rows
        requests = report.requests if report.ok else report.answered_requests
        if rows <= 0:
            return
        self.last_inference_ms = int(time.time() * 1000)
        self.inference_count += rows
        self.execution_count += 1
        for wait_s in report.queue_wait_s:
            self.queue.add(wait_s)
        self.compute_input.add(report.input_s, requests)
        self.compute_infer.add(report.infer_s, requests)
        self.compute_output.add(report.output_s, requests)
        size = self.batch_stats.setdefault(report.rows, BatchSizeStats())
        size.compute_input.add(report.input_s)
        size.compute_infer.add(report.infer_s)
        size.compute_output.add(report.output_s)

    def on_request(self, ok: bool, duration_s: float, encode_s: float = 0.0) -> None:
        """Account one finished request (end to end in the worker)."""
        (self.success if ok else self.fail).add(duration_s)
        if ok and encode_s > 0.0:
            self.compute_output.ns += int(encode_s * 1e9)
