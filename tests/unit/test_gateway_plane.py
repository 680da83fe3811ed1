"""The gateway's data plane without a transport: what it reports about the server itself."""

from __future__ import annotations

import asyncio
import importlib.metadata

import pytest

from api_gateway.forwarder import Forwarder
from api_gateway.metrics import GatewayMetrics
from api_gateway.plane import GatewayPlane
from api_gateway.pool import WorkerPool
from api_gateway.settings import GatewaySettings
from protos import internal_pb2


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


def test_the_described_version_follows_each_change_the_pool_announces() -> None:
    async def scenario() -> None:
        settings = GatewaySettings(workers=("127.0.0.1:1",), startup_discovery_timeout_s=0.01)
        pool = WorkerPool(settings)  # nothing listens there: the worker never turns SERVING
        forwarder = Forwarder(pool, max_inflight_per_worker=8, max_attempts=2)
        plane = GatewayPlane(pool, forwarder, GatewayMetrics(), max_inflight=8)
        await pool.start()
        try:
            worker = pool.get("127.0.0.1:1")
            assert worker is not None
            worker.set_models(_described(("a", 100.0), ("b", 200.0)))
            pool.notify()
            assert plane.model_metadata("iris_clf", "").platform == "platform-b"
            worker.set_models(_described(("a", 300.0), ("b", 200.0)))  # "a" re-created later
            pool.notify()
            assert plane.model_metadata("iris_clf", "").platform == "platform-a"
            worker.set_models(_described(("b", 200.0)))  # "a" unloaded
            pool.notify()
            assert plane.model_metadata("iris_clf", "").platform == "platform-b"
        finally:
            await pool.close()

    asyncio.run(scenario())


def _described(*versions: tuple[str, float]) -> internal_pb2.DescribeModelsResponse:
    response = internal_pb2.DescribeModelsResponse()
    for version, created_unix_s in versions:
        hosted = response.models.add(name="iris_clf", version=version, ready=True)
        hosted.created_unix_s = created_unix_s
        hosted.metadata.platform = f"platform-{version}"
    return response


def test_a_full_worker_batch_is_the_smallest_hosted_batch_size() -> None:
    async def scenario() -> None:
        settings = GatewaySettings(workers=("127.0.0.1:1",), startup_discovery_timeout_s=0.01)
        pool = WorkerPool(settings)
        await pool.start()
        try:
            worker = pool.get("127.0.0.1:1")
            assert worker is not None
            response = internal_pb2.DescribeModelsResponse()
            for name, max_batch_size in (("big", 64), ("small", 8), ("unbatched", 0)):
                response.models.add(name=name, version="1").config.max_batch_size = max_batch_size
            worker.set_models(response)
            assert worker.coalescer.full_call_items == 8
            worker.set_models(internal_pb2.DescribeModelsResponse())
            assert worker.coalescer.full_call_items == 0  # nothing batches: calls take all
        finally:
            await pool.close()

    asyncio.run(scenario())
