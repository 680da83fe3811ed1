"""The worker's queue-depth gauge: read from the batchers' queues when scraped."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from runner_worker.metrics import WorkerMetrics


class _Queue:
    """Stands in for a Batcher: the one property the gauge reads."""

    def __init__(self, depth: int) -> None:
        self.queue_depth = depth


def _depth(registry: CollectorRegistry, model: str, method: str = "predict") -> float | None:
    return registry.get_sample_value(
        "runnerfleet_worker_queue_depth", {"model": model, "method": method}
    )


def test_queue_depth_is_read_at_scrape_and_sums_every_loaded_version():
    registry = CollectorRegistry()
    metrics = WorkerMetrics("w0", "cpu", registry=registry)
    v1, v2 = _Queue(3), _Queue(0)
    metrics.watch_queue("iris", "predict", v1)
    metrics.watch_queue("iris", "predict", v2)
    assert _depth(registry, "iris") == 3.0
    v2.queue_depth = 4  # nothing is set per request: the next scrape sees the queues as they are
    assert _depth(registry, "iris") == 7.0
    other = _Queue(5)
    metrics.watch_queue("mlp", "predict", other)
    assert _depth(registry, "mlp") == 5.0
    assert _depth(registry, "iris") == 7.0


def test_an_unloaded_batcher_leaves_the_gauge():
    registry = CollectorRegistry()
    metrics = WorkerMetrics("w0", "cpu", registry=registry)
    kept = _Queue(2)
    metrics.watch_queue("iris", "predict", kept)
    gone = _Queue(9)
    metrics.watch_queue("iris", "predict", gone)
    assert _depth(registry, "iris") == 11.0
    del gone
    gc.collect()
    assert _depth(registry, "iris") == 2.0
