"""The model repository across workers: where each model runs, and load/unload fanned out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from api_gateway.pool import Worker, WorkerPool
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, NotFound, Unavailable
from protos.status import error_from_rpc_error

__all__ = ["Repository", "WORKER_PARAMETER"]

WORKER_PARAMETER = "worker"  # repository parameter naming one worker (HOST:PORT)


class Repository:
    """RepositoryIndex/ModelLoad/ModelUnload for the whole pool."""

    def __init__(self, pool: WorkerPool, api_names: Sequence[str] = ()) -> None:
        self._pool = pool
        self._api_names = list(api_names)

    def index(self, ready_only: bool) -> pb.RepositoryIndexResponse:
        """Every model any worker hosts; reason = the SERVING workers it runs on."""
        where: dict[tuple[str, str], list[str]] = {}
        ready: dict[tuple[str, str], bool] = {}
        for worker in self._pool.workers:
            for key, hosted in worker.models.items():
                where.setdefault(key, [])
                if worker.serving:
                    where[key].append(worker.address)
                    ready[key] = ready.get(key, False) or hosted.ready
        response = pb.RepositoryIndexResponse()
        for (name, version), addresses in sorted(where.items()):
            state = "READY" if ready.get((name, version)) else "UNAVAILABLE"
            if ready_only and state != "READY":
                continue
            reason = ",".join(sorted(addresses)) if addresses else "no SERVING worker hosts it"
            response.models.add(name=name, version=version, state=state, reason=reason)
        for api in self._api_names:
            response.models.add(name=api, version="", state="READY", reason="gateway service API")
        return response

    async def load(self, request: pb.RepositoryModelLoadRequest, timeout_s: float) -> None:
        """Load on the worker named by parameter `worker`, else on every SERVING worker."""
        targets = self._targets(request, lambda w: w.serving)
        await self._fan_out(targets, "RepositoryModelLoad", request, "load", timeout_s)

    async def unload(self, request: pb.RepositoryModelUnloadRequest, timeout_s: float) -> None:
        """Unload from the worker named by `worker`, else from every SERVING worker hosting it."""
        targets = self._targets(request, lambda w: w.serving and w.hosts(request.model_name, ""))
        if not targets:
            raise NotFound(f"model {request.model_name} is not loaded on any SERVING worker")
        await self._fan_out(targets, "RepositoryModelUnload", request, "unload", timeout_s)

    def _targets(self, request: Any, default: Callable[[Worker], bool]) -> list[Worker]:
        if not request.model_name:
            raise InvalidArgument("model_name is empty: name the model to load or unload")
        if WORKER_PARAMETER in request.parameters:
            address = request.parameters[WORKER_PARAMETER].string_param
            worker = self._pool.get(address)
            if worker is None:
                raise NotFound(f"worker {address!r} is not in the gateway's pool")
            return [worker]
        return [w for w in self._pool.workers if default(w)]

    async def _fan_out(
        self, targets: list[Worker], rpc: str, request: Any, what: str, timeout_s: float
    ) -> None:
        if not targets:
            raise Unavailable(f"no SERVING worker to {what} model {request.model_name} on")
        forwarded = type(request)()
        forwarded.CopyFrom(request)
        if WORKER_PARAMETER in forwarded.parameters:
            del forwarded.parameters[WORKER_PARAMETER]
        replies = await asyncio.gather(
            *(getattr(w.inference, rpc)(forwarded, timeout=timeout_s) for w in targets),
            return_exceptions=True,
        )
        await asyncio.gather(*(self._pool.describe(w) for w in targets))  # models changed
        for worker, reply in zip(targets, replies, strict=True):
            if isinstance(reply, grpc.aio.AioRpcError):
                error = error_from_rpc_error(reply)
                error.message = f"{what} on worker {worker.address} failed: {error.message}"
                raise error
            if isinstance(reply, BaseException):
                raise reply
