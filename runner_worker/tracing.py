"""The worker's spans: one per request, and per batch its queue waits, the batch and the model call.

The request span (``worker ModelInfer``, kind SERVER) is a child of the caller's W3C
``traceparent`` (gRPC metadata, or the gateway's per-item field in a coalesced forward). The
batcher hands each executed batch's timing to ``BatchSpans.on_batch``, which records, after
the fact and only for sampled requests: a ``queue wait`` span under each request, one
``batch`` span under the oldest traced request and linked to every request it served, and a
``model call`` span under the batch. A batch that failed and was bisected is reported once
(its model-call span then covers the model time summed over the executions).
"""

from __future__ import annotations

import time

from protos.tracing import Tracing
from runner_worker.batch_types import BatchTiming

__all__ = ["BatchSpans"]


class BatchSpans:
    """A ``BatchTracer`` for one model method."""

    def __init__(self, tracing: Tracing, model: str, version: str, method: str) -> None:
        self._tracing = tracing
        self._attributes = {
            "runnerfleet.model": model,
            "runnerfleet.model_version": version,
            "runnerfleet.method": method,
        }
        # perf_counter -> monotonic, so batch stages and queue waits share one clock
        self._perf_to_mono_s = time.monotonic() - time.perf_counter()

    def on_batch(self, timing: BatchTiming) -> None:
        tracing = self._tracing
        recording = tracing.recording
        traced = [t for t in timing.traces if recording(t)]
        if not traced:
            return
        for trace, enqueued_s in zip(timing.traces, timing.enqueued_s, strict=True):
            if recording(trace):
                tracing.record(
                    "queue wait",
                    parent=trace,
                    start_s=enqueued_s,
                    end_s=timing.dispatched_s,
                    attributes=self._attributes,
                )
        to_mono = self._perf_to_mono_s
        report = timing.report
        status = "OK" if report.ok else "INTERNAL"
        started_s = timing.started_s + to_mono
        batch = tracing.start(
            "batch",
            parent=traced[0],
            links=traced,
            attributes={
                **self._attributes,
                "runnerfleet.batch_rows": report.rows,
                "runnerfleet.batch_requests": report.requests,
                "runnerfleet.executions": report.executions,
            },
            start_s=started_s,
        )
        tracing.record(
            "model call",
            parent=batch,
            start_s=started_s + report.input_s,
            end_s=started_s + report.input_s + report.infer_s,
            attributes={**self._attributes, "runnerfleet.batch_rows": report.rows},
            status=status,
        )
        tracing.end(batch, status=status, end_s=timing.ended_s + to_mono)
