"""The model repository across workers: where each model runs, and load/unload fanned out.

Transport-neutral: workers are reached through ``Worker.load_model``/``unload_model`` (the
pool's transport edge), which raise RunnerFleetErrors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from api_gateway.pool import Worker, WorkerPool
from protos import grpc_service_pb2 as pb
from protos.codec import MODEL_NAME_REQUIRED
from protos.errors import InvalidArgument, NotFound, RunnerFleetError, Unavailable

__all__ = ["Repository", "WORKER_PARAMETER"]

WORKER_PARAMETER = "worker"  # repository parameter naming one worker (HOST:PORT)

Parameters = Mapping[str, pb.ModelRepositoryParameter]


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

    async def load(self, name: str, parameters: Parameters, timeout_s: float) -> None:
        """Load on the worker named by parameter `worker`, else on every SERVING worker."""
        targets = self._targets(name, parameters, lambda w: w.serving)
        await self._fan_out(targets, name, parameters, "load", timeout_s)

    async def unload(self, name: str, parameters: Parameters, timeout_s: float) -> None:
        """Unload from the worker named by `worker`, else from every SERVING worker hosting it."""
        targets = self._targets(name, parameters, lambda w: w.serving and w.hosts(name, ""))
        if not targets:
            raise NotFound(f"model {name} is not loaded on any SERVING worker")
        await self._fan_out(targets, name, parameters, "unload", timeout_s)

    def _targets(
        self, name: str, parameters: Parameters, default: Callable[[Worker], bool]
    ) -> list[Worker]:
        if not name:
            raise InvalidArgument(MODEL_NAME_REQUIRED)
        if WORKER_PARAMETER in parameters:
            address = parameters[WORKER_PARAMETER].string_param
            worker = self._pool.get(address)
            if worker is None:
                raise NotFound(f"worker {address!r} is not in the gateway's pool")
            return [worker]
        return [w for w in self._pool.workers if default(w)]

    async def _fan_out(
        self, targets: list[Worker], name: str, parameters: Parameters, what: str, timeout_s: float
    ) -> None:
        if not targets:
            raise Unavailable(f"no SERVING worker to {what} model {name} on")
        forwarded = {k: v for k, v in parameters.items() if k != WORKER_PARAMETER}
        replies = await asyncio.gather(
            *(
                (w.load_model if what == "load" else w.unload_model)(name, forwarded, timeout_s)
                for w in targets
            ),
            return_exceptions=True,
        )
        await asyncio.gather(*(self._pool.describe(w) for w in targets))  # models changed
        for worker, reply in zip(targets, replies, strict=True):
            if isinstance(reply, RunnerFleetError):
                reply.message = f"{what} on worker {worker.address} failed: {reply.message}"
                raise reply
            if isinstance(reply, BaseException):
                raise reply
