"""The models a worker hosts: load/unload from the store, one batcher per method, lookup."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from protos import heap
from protos.codec import MODEL_NAME_REQUIRED
from protos.errors import InvalidArgument, NotFound, Unavailable, shown
from protos.tracing import Tracing
from runner_worker.batcher import Batcher, BatchPolicy, BatchReport
from runner_worker.metrics import MethodMetrics, WorkerMetrics
from runner_worker.runner import ModelRunner
from runner_worker.settings import WorkerSettings
from runner_worker.statistics import ModelStats
from runner_worker.tracing import BatchSpans
from store.integrity import IntegrityError, SignatureError
from store.versions import served_version

__all__ = ["HostedModel", "ModelHost"]

_log = logging.getLogger(__name__)


class _Events:
    """Fans one batcher's events out to its method metrics and its model statistics."""

    def __init__(self, metrics: MethodMetrics, stats: ModelStats) -> None:
        self._metrics = metrics
        self._stats = stats

    def on_shed(self, reason: str) -> None:
        self._metrics.on_shed(reason)

    def on_rejected(self, reason: str) -> None:
        self._metrics.on_rejected(reason)

    def on_batch(self, report: BatchReport) -> None:
        self._metrics.on_batch(report)
        self._stats.on_batch(report)


@dataclasses.dataclass
class HostedModel:
    """One loaded model version with its batchers, metrics and statistics."""

    runner: ModelRunner
    stats: ModelStats
    batchers: dict[str, Batcher]
    metrics: dict[str, MethodMetrics]
    load_s: float

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def version(self) -> str:
        return self.runner.version

    @property
    def created_unix_s(self) -> float:
        """When the store created this version (what decides the served version)."""
        return float(self.runner.model.info.creation_time.timestamp())


def _store_get(tag: str) -> Any:
    import store

    return store.get(tag)


class ModelHost:
    """Registry of hosted model versions; the served version per name is the newest created.

    "Newest" is ``store.versions.served_version`` (the store's creation time), the rule the
    gateway uses too, so a request without a version runs the version the gateway describes.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
        store_get: Callable[[str], Any] = _store_get,
        tracing: Tracing | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._store_get = store_get
        self._tracing = tracing or Tracing()
        self._models: dict[str, dict[str, HostedModel]] = {}
        self._served_cache: dict[str, HostedModel] = {}  # name -> served; reset on load/unload
        self._loading: set[str] = set()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lookup
    def get(self, name: str, version: str = "") -> HostedModel:
        """The hosted version (empty = served), or NotFound / Unavailable naming it."""
        versions = self._models.get(name)
        if not versions:
            if not name:
                raise InvalidArgument(MODEL_NAME_REQUIRED)
            if name in self._loading:
                raise Unavailable(f"model {name!r} is loading; retry shortly")
            hosted = ", ".join(sorted(self._models)) or "none"
            raise NotFound(f"model {shown(name)} is not hosted by this worker (hosted: {hosted})")
        if not version:
            return self._served_model(name, versions)
        hosted_model = versions.get(version)
        if hosted_model is None:
            raise NotFound(
                f"model {name!r} has no version {shown(version)} on this worker "
                f"(versions: {', '.join(sorted(versions))})"
            )
        return hosted_model

    def hosted(self) -> list[HostedModel]:
        """Every hosted model version, by name then version."""
        return [m for n in sorted(self._models) for _, m in sorted(self._models[n].items())]

    def versions(self, name: str) -> list[str]:
        """Hosted versions of ``name``."""
        return sorted(self._models.get(name, {}))

    def served_version(self, name: str) -> str | None:
        """The version a request for ``name`` without a version runs (None if not hosted)."""
        versions = self._models.get(name)
        return self._served_model(name, versions).version if versions else None

    def _served_model(self, name: str, versions: dict[str, HostedModel]) -> HostedModel:
        """The served version of ``name`` (cached until a load or unload of it)."""
        served = self._served_cache.get(name)
        if served is None:
            chosen = served_version({v: m.created_unix_s for v, m in versions.items()})
            assert chosen is not None
            served = self._served_cache[name] = versions[chosen]
        return served

    @property
    def loading(self) -> set[str]:
        return set(self._loading)

    def pending(self) -> int:
        """Requests queued or running across all batchers."""
        return sum(b.pending for m in self.hosted() for b in m.batchers.values())

    # ------------------------------------------------------------------ load / unload
    async def load(self, tag: str) -> HostedModel:
        """Load ``tag`` from the store, warm it up and serve it (no-op if already hosted)."""
        return await self.host(tag.partition(":")[0], lambda: self._store_get(tag))

    async def host(
        self,
        name: str,
        get_model: Callable[[], Any],
        options: Mapping[str, Any] | None = None,
    ) -> HostedModel:
        """Host the model ``get_model()`` returns (a stored model, or a Service's custom runner).

        ``options`` maps a method to its runner's batch options (``max_batch_size``,
        ``max_latency_ms``; None = this worker's flag).
        """
        self._loading.add(name)
        try:
            async with self._lock:
                model = await asyncio.to_thread(get_model)
                existing = self._models.get(model.info.name, {}).get(model.info.version)
                if existing is not None:
                    return existing
                if hasattr(model, "checked"):  # a stored model (a custom runner has no files)
                    try:  # hash every file (and check its signature) before anything is unpickled
                        model = await asyncio.to_thread(model.checked, self._settings.trust_policy)
                    except (IntegrityError, SignatureError) as exc:
                        _log.error("refusing to serve %s: %s", model.tag, exc.message)
                        raise
                hosted = await self._start(model, options or {})
                self._models.setdefault(hosted.name, {})[hosted.version] = hosted
                self._served_cache.pop(hosted.name, None)
                heap.settle()  # the model's objects live as long as it: never walk them again
                _log.info(
                    "loaded %s:%s (manifest sha256 %s) in %.2f s",
                    hosted.name,
                    hosted.version,
                    getattr(model, "manifest_sha256", "none: a custom runner"),
                    hosted.load_s,
                )
                return hosted
        finally:
            self._loading.discard(name)

    async def _start(self, model: Any, options: Mapping[str, Any]) -> HostedModel:
        s = self._settings
        runner = ModelRunner(model, s.device)
        load_s = await runner.load(warmup=s.warmup)
        self._metrics.model_load.labels(runner.name).set(load_s)
        stats = ModelStats(runner.name, runner.version)
        batchers: dict[str, Batcher] = {}
        method_metrics: dict[str, MethodMetrics] = {}
        for method, info in runner.methods.items():
            mm = self._metrics.method(runner.name, method)
            chosen = options.get(method)
            max_batch_size = getattr(chosen, "max_batch_size", None) or s.max_batch_size
            max_latency_ms = getattr(chosen, "max_latency_ms", None)
            policy = BatchPolicy(
                batchable=info.batchable,
                batch_dim=info.batch_dim,
                max_batch_size=max_batch_size,
                max_latency_s=s.max_latency_s if max_latency_ms is None else max_latency_ms / 1e3,
                max_queue_size=s.max_queue_size,
                max_inflight_batches=s.max_inflight_batches,
            )
            batchers[method] = Batcher(
                _bind(runner, method),
                policy,
                name=f"{runner.name}.{method}",
                observer=_Events(mm, stats),
                tracer=(
                    BatchSpans(self._tracing, runner.name, runner.version, method)
                    if self._tracing.enabled
                    else None
                ),
            )
            batchers[method].start()
            self._metrics.watch_queue(runner.name, method, batchers[method])
            method_metrics[method] = mm
        return HostedModel(runner, stats, batchers, method_metrics, load_s)

    async def unload(self, name: str, version: str = "") -> list[HostedModel]:
        """Stop serving ``name`` (one version, or all); queued work finishes first."""
        async with self._lock:
            versions = self._models.get(name, {})
            keys = [version] if version else list(versions)
            if not versions or any(k not in versions for k in keys):
                what = f"model {name!r}" + (f" version {version!r}" if version else "")
                raise NotFound(f"{what} is not hosted by this worker")
            removed = [versions.pop(k) for k in keys]
            self._served_cache.pop(name, None)  # chosen again from the versions left
            if not versions:
                self._models.pop(name, None)
        for hosted in removed:
            await self._stop(hosted, self._settings.drain_timeout_s)
        return removed  # cycles they leave among frozen objects go at the next load's settle

    async def _stop(self, hosted: HostedModel, timeout_s: float) -> None:
        await asyncio.gather(*(b.drain(timeout_s) for b in hosted.batchers.values()))
        await asyncio.gather(*(b.close() for b in hosted.batchers.values()))
        hosted.runner.close()

    # ------------------------------------------------------------------ lifecycle
    async def drain(self, timeout_s: float) -> bool:
        """Stop admitting everywhere; True once all queued and running work finished."""
        results = await asyncio.gather(
            *(b.drain(timeout_s) for m in self.hosted() for b in m.batchers.values())
        )
        return all(results)

    async def close(self) -> None:
        """Stop every batcher and release every model."""
        for hosted in self.hosted():
            await asyncio.gather(*(b.close() for b in hosted.batchers.values()))
            hosted.runner.close()
        self._models.clear()
        self._served_cache.clear()


def _bind(runner: ModelRunner, method: str) -> Any:
    async def run_batch(arrays: list[Any]) -> list[Any]:
        return await runner.run(method, arrays)

    return run_batch
