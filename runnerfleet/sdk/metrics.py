"""``runnerfleet.metrics``: custom Prometheus metrics from user code, exported by the process.

As ``bentoml.metrics``: create a ``Counter``/``Histogram``/``Gauge``/``Summary`` at module level
of a service file or Runnable and update it in API functions or runnable methods; the worker
(and the gateway) serving that code export it on their ``/metrics`` page beside their own
metrics. The names are used as given (choose a prefix of your own). Creating a metric again
with the same name, type and labels (a module imported twice, a notebook cell run again)
returns the existing one instead of failing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client import Summary as _Summary

from protos.errors import InvalidArgument

__all__ = ["Counter", "Histogram", "Gauge", "Summary", "REGISTRY", "export_into"]

REGISTRY = CollectorRegistry(auto_describe=True)  # what the processes export for user code
_made: dict[str, tuple[type, tuple[str, ...], Any]] = {}
_lock = threading.Lock()


def _metric(kind: type, name: str, doc: str, labelnames: Sequence[str], kw: dict[str, Any]) -> Any:
    registry = kw.pop("registry", REGISTRY)
    if registry is not REGISTRY:
        return kind(name, doc, labelnames, registry=registry, **kw)
    labels = tuple(labelnames)
    with _lock:
        known = _made.get(name)
        if known is not None:
            if known[0] is not kind or known[1] != labels:
                raise InvalidArgument(
                    f"metric {name!r} already exists as a {known[0].__name__} with labels "
                    f"{list(known[1])}"
                )
            return known[2]
        metric = kind(name, doc, labels, registry=REGISTRY, **kw)
        _made[name] = (kind, labels, metric)
        return metric


def Counter(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A counter in the user registry (the serving process exports it)."""
    return _metric(_Counter, name, documentation, labelnames, kw)


def Histogram(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A histogram in the user registry."""
    return _metric(_Histogram, name, documentation, labelnames, kw)


def Gauge(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A gauge in the user registry."""
    return _metric(_Gauge, name, documentation, labelnames, kw)


def Summary(name: str, documentation: str, labelnames: Sequence[str] = (), **kw: Any) -> Any:  # noqa: N802
    """A summary in the user registry."""
    return _metric(_Summary, name, documentation, labelnames, kw)


def export_into(registry: CollectorRegistry) -> None:
    """Make ``registry`` (a process's own) also collect the user metrics, at scrape time."""
    registry.register(REGISTRY)  # type: ignore[arg-type]  # a registry is a collector
