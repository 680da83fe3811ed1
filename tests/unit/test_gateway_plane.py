"""The gateway's data plane without a transport: what it reports about the server itself."""

from __future__ import annotations

import importlib.metadata

import pytest

from api_gateway.forwarder import Forwarder
from api_gateway.metrics import GatewayMetrics
from api_gateway.plane import GatewayPlane
from api_gateway.pool import WorkerPool
from api_gateway.settings import GatewaySettings


def _plane() -> GatewayPlane:
    pool = WorkerPool(GatewaySettings(workers=("127.0.0.1:1",)))  # never started
    forwarder = Forwarder(pool, max_inflight_per_worker=8, max_attempts=2)
    return GatewayPlane(pool, forwarder, GatewayMetrics(), max_inflight=8)


def test_server_metadata_reports_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        return "9.8.7" if name == "runnerfleet" else real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    metadata = _plane().server_metadata()
    assert (metadata.name, metadata.version) == ("runnerfleet", "9.8.7")


def test_an_empty_pool_is_not_ready_and_advertises_no_statistics() -> None:
    plane = _plane()
    assert not plane.server_ready()
    assert not plane.model_ready("iris_clf", "")
    assert "statistics" not in plane.server_metadata().extensions
