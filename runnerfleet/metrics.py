"""``runnerfleet.metrics``: custom Prometheus metrics from user code (see runnerfleet.sdk)."""

from runnerfleet.sdk.metrics import REGISTRY, Counter, Gauge, Histogram, Summary, export_into

__all__ = ["Counter", "Histogram", "Gauge", "Summary", "REGISTRY", "export_into"]
