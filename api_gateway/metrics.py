"""Gateway Prometheus metrics (names fixed by docs/ARCHITECTURE.md) and the /metrics server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api_gateway.outlier import EJECTION_REASONS
from protos.metrics_http import MetricsServer, metrics_access, serve_metrics
from protos.trust_settings import TrustSettings

__all__ = ["GatewayMetrics", "REJECT_REASONS", "EJECTION_REASONS", "PROTOCOLS"]

# Front door of a request (`protocol` label on the request counter and duration); dashboards
# and alerts aggregate with `sum by (...)`, so their series match as before the label.
PROTOCOLS = ("grpc", "http")
REJECT_REASONS = ("overload", "unauthenticated", "no_worker", "deadline_unmeetable")
FORWARD_TRANSPORTS = ("local_link", "grpc")  # how a forward call reaches a worker
_LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = tuple(float(2**i) for i in range(11))  # 1, 2, 4, ..., 1024


class GatewayMetrics:
    """The gateway's metrics in their own registry; label children are cached off the hot path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "runnerfleet_gateway_requests", "Requests answered, by model, gRPC code, protocol.",
            ["model", "code", "protocol"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "runnerfleet_gateway_request_duration_seconds", "End-to-end time in the gateway.",
            ["model", "protocol"], buckets=_LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.forward_duration = Histogram(
            "runnerfleet_gateway_forward_duration_seconds", "One forward hop (one coalesced call).",
            ["worker"], buckets=_LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.forward_batch = Histogram(
            "runnerfleet_gateway_forward_batch_size_requests", "Requests per coalesced forward.",
            ["worker"], buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.inflight = Gauge(
            "runnerfleet_gateway_inflight_requests", "Requests queued for or running on a worker.",
            ["worker"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "runnerfleet_gateway_retries",
            "Requests retried on another replica.",
            ["model"],
            registry=r,
        )
        self.rejected = Counter(
            "runnerfleet_gateway_rejected",
            "Requests refused by the gateway.",
            ["reason"],
            registry=r,
        )
        self.worker_up = Gauge(
            "runnerfleet_gateway_worker_up",
            "1 when the worker is SERVING in the pool.",
            ["worker"],
            registry=r,
        )
        self.workers = Gauge("runnerfleet_gateway_workers", "Workers in the pool.", registry=r)
        self.ejections = Counter(
            "runnerfleet_gateway_ejections",
            "Workers taken out of rotation: outlier ejections and missed health checks.",
            ["worker", "reason"],
            registry=r,
        )
        self.hedges = Counter(
            "runnerfleet_gateway_hedges",
            "Forwards sent a second time to another replica because the first ran long.",
            ["model"],
            registry=r,
        )
        self.forward_calls = Counter(
            "runnerfleet_gateway_forward_calls",
            "Calls to workers, by transport: local_link (the worker's Unix socket) or grpc.",
            ["worker", "transport"],
            registry=r,
        )
        self.shm_hop_requests = Counter(
            "runnerfleet_gateway_shm_hop_requests",
            "Requests whose tensors crossed to the worker through shared memory.",
            ["worker"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self._model_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._known_workers: set[str] = set()
        self._server: MetricsServer | None = None

    def observe_request(
        self,
        model: str,
        code: str,
        duration_s: float,
        trace_id: str | None = None,
        protocol: str = "grpc",
    ) -> None:
        """Count one answered request and its duration (after the handler finished).

        A traced request leaves its trace id as the bucket's exemplar (OpenMetrics only);
        ``protocol`` is the front door it came in by (``grpc`` or ``http``).
        """
        key = (model, code, protocol)
        children = self._model_children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, code, protocol),
                self.request_duration.labels(model, protocol),
            )
            self._model_children[key] = children
        children[0].inc()
        if trace_id is None:
            children[1].observe(duration_s)
        else:
            children[1].observe(duration_s, exemplar={"trace_id": trace_id})

    def touch_model(self, model: str) -> None:
        """Create a model's label sets so dashboards have no gaps."""
        for protocol in PROTOCOLS:
            self.requests.labels(model, "OK", protocol)
            self.request_duration.labels(model, protocol)
        self.retries.labels(model)
        self.hedges.labels(model)

    def observe_call(self, worker: str, transport: str) -> None:
        """One call to `worker` over `transport` (FORWARD_TRANSPORTS), or "shm_hop": one request
        whose tensors went through shared memory."""
        if transport == "shm_hop":
            self.shm_hop_requests.labels(worker).inc()
        else:
            self.forward_calls.labels(worker, transport).inc()

    def observe_batch(self, worker: str, size: int, duration_s: float) -> None:
        """One coalesced forward call to `worker`."""
        self.forward_batch.labels(worker).observe(size)
        self.forward_duration.labels(worker).observe(duration_s)

    def sync_workers(self, workers: list[Any]) -> None:
        """Mirror pool membership and health (`workers`: .address, .serving, .ejected, .inflight).

        ``worker_up`` is 1 only for a worker the router may pick: SERVING and not ejected.
        """
        current = {w.address for w in workers}
        for gone in self._known_workers - current:
            for metric in (
                self.worker_up,
                self.inflight,
                self.forward_batch,
                self.forward_duration,
            ):
                with contextlib.suppress(KeyError):
                    metric.remove(gone)
            for reason in EJECTION_REASONS:
                with contextlib.suppress(KeyError):
                    self.ejections.remove(gone, reason)
            for transport in FORWARD_TRANSPORTS:
                with contextlib.suppress(KeyError):
                    self.forward_calls.remove(gone, transport)
            with contextlib.suppress(KeyError):
                self.shm_hop_requests.remove(gone)
        for worker in workers:
            up = worker.serving and not worker.ejected
            self.worker_up.labels(worker.address).set(1 if up else 0)
            if worker.address not in self._known_workers:
                self.inflight.labels(worker.address).set_function(_reader(worker))
                self.forward_batch.labels(worker.address)
                self.forward_duration.labels(worker.address)
                for reason in EJECTION_REASONS:
                    self.ejections.labels(worker.address, reason)
                for transport in FORWARD_TRANSPORTS:
                    self.forward_calls.labels(worker.address, transport)
        self._known_workers = current
        self.workers.set(len(workers))

    def serve(self, host: str, port: int, access: TrustSettings | None = None) -> int:
        """Serve /metrics on a daemon thread (TLS / basic auth per `access`); the bound port."""
        from runnerfleet.sdk.metrics import export_into

        export_into(self.registry)  # runnerfleet.metrics created by user code, on the same page
        self._server = serve_metrics(self.registry, host, port, **metrics_access(access))
        return self._server.port

    def shutdown(self) -> None:
        """Stop the /metrics HTTP server."""
        if self._server is not None:
            self._server.close()
            self._server = None


def _reader(worker: Any) -> Callable[[], float]:
    """A zero-cost gauge source: read the worker's in-flight count at scrape time."""
    return lambda: float(worker.inflight)
