"""``runnerfleet.metrics``: custom Prometheus metrics from user code, exported by the process.

As ``bentoml.metrics``: create a ``Counter``/``Histogram``/``Gauge``/``Summary`` at module level
of a service file or Runnable and update it in API functions or runnable methods; the worker
(and the gateway) serving that code export it on their ``/metrics`` page beside their own
metrics. The names are used as given (choose a prefix of your own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client import Summary as _Summary

__all__ = ["Counter", "Histogram", "Gauge", "Summary", "REGISTRY", "export_into"]

REGISTRY = CollectorRegistry(auto_describe=True)  # what the processes export for user code


def Counter(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A counter in the user registry (the serving process exports it)."""
    return _Counter(name, documentation, labelnames, registry=kw.pop("registry", REGISTRY), **kw)


def Histogram(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A histogram in the user registry."""
    return _Histogram(name, documentation, labelnames, registry=kw.pop("registry", REGISTRY), **kw)


def Gauge(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A gauge in the user registry."""
    return _Gauge(name, documentation, labelnames, registry=kw.pop("registry", REGISTRY), **kw)


def Summary(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A summary in the user registry."""
    return _Summary(name, documentation, labelnames, registry=kw.pop("registry", REGISTRY), **kw)


def export_into(registry: CollectorRegistry) -> None:
    """Make ``registry`` (a process's own) also collect the user metrics, at scrape time."""
    registry.register(REGISTRY)  # type: ignore[arg-type]  # a registry is a collector
