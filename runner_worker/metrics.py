"""The worker's Prometheus metrics (names fixed in docs/ARCHITECTURE.md) and their endpoint."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from protos.metrics_http import metrics_access, serve_metrics
from protos.trust_settings import TrustSettings
from runner_worker.batcher import BatchReport

__all__ = [
    "WorkerMetrics",
    "MethodMetrics",
    "CODES",
    "PROTOCOLS",
    "SHED_REASONS",
    "REJECT_REASONS",
]

CODES = (
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
    "UNAVAILABLE",
    "INTERNAL",
)
# Front door a request came in by (`protocol` label on the request counter and duration);
# queries that aggregate with `sum by (...)` see the same totals as before the label existed.
PROTOCOLS = ("grpc", "http")
SHED_REASONS = ("deadline", "latency_budget", "cancelled", "deadline_unmeetable")
REJECT_REASONS = ("queue_full", "invalid_input", "deadline_unmeetable")
SIZE_BUCKETS = tuple(float(2**i) for i in range(11))  # 1, 2, 4, ..., 1024
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)


class QueueSource(Protocol):
    """What the queue-depth gauge reads (a Batcher)."""

    @property
    def queue_depth(self) -> int: ...


def _queued_reader(watched: weakref.WeakSet[QueueSource]) -> Callable[[], float]:
    """A gauge source read at scrape time (the metrics thread): requests queued now."""
    return lambda: float(sum(source.queue_depth for source in list(watched)))


class WorkerMetrics:
    """All worker metrics in one registry (one per process; tests may make their own)."""

    def __init__(self, worker_id: str, device: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.worker_id = worker_id
        self.device = device
        r = self.registry
        mm = ("model", "method")
        self.requests = Counter(
            "runnerfleet_worker_requests_total",
            "Requests by status code and front door (protocol grpc or http).",
            (*mm, "code", "protocol"),
            registry=r,
        )
        self.request_duration = Histogram(
            "runnerfleet_worker_request_duration_seconds",
            "End-to-end time in the worker, by front door.",
            (*mm, "protocol"),
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue_wait = Histogram(
            "runnerfleet_worker_queue_wait_seconds",
            "Time waiting in the batcher queue.",
            mm,
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inference_duration = Histogram(
            "runnerfleet_worker_inference_duration_seconds",
            "Model execution time per batch.",
            mm,
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_rows = Histogram(
            "runnerfleet_worker_batch_size_rows",
            "Rows per executed batch.",
            mm,
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "runnerfleet_worker_batch_size_requests",
            "Requests per executed batch.",
            mm,
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "runnerfleet_worker_queue_depth", "Requests waiting in the queue.", mm, registry=r
        )
        self._queues: dict[tuple[str, str], weakref.WeakSet[QueueSource]] = {}
        self.shed = Counter(
            "runnerfleet_worker_shed_total",
            "Requests dropped before running.",
            (*mm, "reason"),
            registry=r,
        )
        self.rejected = Counter(
            "runnerfleet_worker_rejected_total",
            "Requests refused on arrival.",
            (*mm, "reason"),
            registry=r,
        )
        self.model_load = Gauge(
            "runnerfleet_worker_model_load_seconds",
            "Time to load and warm a model.",
            ("model",),
            registry=r,
        )
        self.up = Gauge(
            "runnerfleet_worker_up",
            "1 while serving, 0 while loading or draining.",
            ("worker", "device"),
            registry=r,
        )
        self.set_up(False)

    def set_up(self, serving: bool) -> None:
        """Report the worker as serving (1) or not (0)."""
        self.up.labels(self.worker_id, self.device).set(1 if serving else 0)

    def watch_queue(self, model: str, method: str, batcher: QueueSource) -> None:
        """``runnerfleet_worker_queue_depth`` of model/method: its batchers' queues, summed
        when scraped (every loaded version of the model; nothing is set per request)."""
        key = (model, method)
        watched = self._queues.get(key)
        if watched is None:
            watched = self._queues[key] = weakref.WeakSet()
            self.queue_depth.labels(model, method).set_function(_queued_reader(watched))
        watched.add(batcher)

    def method(self, model: str, method: str) -> MethodMetrics:
        """The label children of one model method, touched so dashboards have no gaps."""
        return MethodMetrics(self, model, method)

    def serve(self, host: str, port: int, access: TrustSettings | None = None) -> int:
        """Serve /metrics on a daemon thread (TLS / basic auth per `access`); the bound port."""
        from runnerfleet.sdk.metrics import export_into

        export_into(self.registry)  # runnerfleet.metrics created by user code, on the same page
        self._server = serve_metrics(self.registry, host, port, **metrics_access(access))
        return self._server.port


class MethodMetrics:
    """Metric children for one (model, method); also a BatchObserver for its batcher."""

    def __init__(self, metrics: WorkerMetrics, model: str, method: str) -> None:
        labels = (model, method)
        self._requests = {
            (c, p): metrics.requests.labels(*labels, c, p) for c in CODES for p in PROTOCOLS
        }
        self._metrics = metrics
        self._labels = labels
        self.request_duration = {p: metrics.request_duration.labels(*labels, p) for p in PROTOCOLS}
        self.queue_wait = metrics.queue_wait.labels(*labels)
        self.inference_duration = metrics.inference_duration.labels(*labels)
        self.batch_rows = metrics.batch_rows.labels(*labels)
        self.batch_requests = metrics.batch_requests.labels(*labels)
        self._shed = {r: metrics.shed.labels(*labels, r) for r in SHED_REASONS}
        self._rejected = {r: metrics.rejected.labels(*labels, r) for r in REJECT_REASONS}

    def on_request(
        self, code: str, duration_s: float, trace_id: str | None = None, protocol: str = "grpc"
    ) -> None:
        """Count a finished request and observe its end-to-end duration.

        A traced request leaves its trace id as the bucket's exemplar (shown to OpenMetrics
        scrapers only); ``protocol`` is the front door it came in by.
        """
        counter = self._requests.get((code, protocol))
        if counter is None:
            counter = self._metrics.requests.labels(*self._labels, code, protocol)
            self._requests[(code, protocol)] = counter
        duration = self.request_duration.get(protocol)
        if duration is None:
            duration = self._metrics.request_duration.labels(*self._labels, protocol)
            self.request_duration[protocol] = duration
        counter.inc()
        if trace_id is None:
            duration.observe(duration_s)
        else:
            duration.observe(duration_s, exemplar={"trace_id": trace_id})

    def on_shed(self, reason: str) -> None:
        self._shed[reason].inc()

    def on_rejected(self, reason: str) -> None:
        self._rejected[reason].inc()

    def on_batch(self, report: BatchReport) -> None:
        for wait_s in report.queue_wait_s:
            self.queue_wait.observe(wait_s)
        self.inference_duration.observe(report.infer_s)
        self.batch_rows.observe(report.rows)
        self.batch_requests.observe(report.requests)
