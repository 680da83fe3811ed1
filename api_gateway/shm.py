"""System shared memory through the gateway: a registration at the gateway is one at every worker.

The gateway forwards request bytes without decoding tensors, so the worker that runs a request
reads (and writes) its regions itself. Client, gateway and workers must therefore share a host
(and its ``/dev/shm``). Registering at the gateway registers at every worker in the pool; a
worker that joins (or comes back) later gets every registration replayed before the router may
pick it; unregistering drops the region everywhere. Status is the gateway's own list.

Failure modes: if any worker refuses a registration (the key does not exist on its host, the
region does not fit), the workers that accepted it are told to unregister it again and the
client gets that worker's error; a worker that cannot be reached during a replay is logged and
stays in the pool (its requests naming the region then answer NOT_FOUND from the worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from api_gateway.pool import Worker
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument, NotFound, RunnerFleetError, Unavailable
from protos.shm import RegionStatus

__all__ = ["SharedMemoryForwarder"]

log = logging.getLogger(__name__)


class SharedMemoryForwarder:
    """The gateway's registered regions, mirrored to every worker of the pool.

    Transport-neutral: workers are reached through ``Worker.register_shm``/``unregister_shm``.
    """

    def __init__(self, workers: Callable[[], Sequence[Worker]]) -> None:
        self._workers = workers  # the pool's current workers
        self._regions: dict[str, pb.SystemSharedMemoryRegisterRequest] = {}
        self._lock = asyncio.Lock()

    def status(self, name: str = "") -> list[RegionStatus]:
        """Every registered region, or one (NotFound if unknown)."""
        if name and name not in self._regions:
            raise NotFound(f"shared-memory region {name!r} is not registered")
        names = [name] if name else sorted(self._regions)
        return [
            RegionStatus(r.name, r.key, r.offset, r.byte_size)
            for r in (self._regions[n] for n in names)
        ]

    async def register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        """Register at every SERVING worker; all or none."""
        async with self._lock:
            if request.name in self._regions:
                raise InvalidArgument(
                    f"shared-memory region {request.name!r} is already registered; "
                    "unregister it first"
                )
            # workers not SERVING yet get it replayed when they turn SERVING
            workers = [w for w in self._workers() if w.serving]
            if not workers:
                raise Unavailable("no worker to register shared memory with; retry shortly")
            results = await asyncio.gather(*(_register(w, request) for w in workers))
            failed = [(w, r) for w, r in zip(workers, results, strict=True) if r is not None]
            if failed:
                accepted = [w for w, r in zip(workers, results, strict=True) if r is None]
                await asyncio.gather(*(_unregister(w, request.name) for w in accepted))
                worker, error = failed[0]
                raise type(error)(f"worker {worker.address}: {error.message}")
            copy = pb.SystemSharedMemoryRegisterRequest()
            copy.CopyFrom(request)
            self._regions[request.name] = copy

    async def unregister(self, name: str = "") -> None:
        """Unregister one region (NotFound if unknown) or all, at every worker.

        "All" means every region registered through this gateway, by name: the workers' own
        unregister-all would also drop the gateway's shared-memory hop slots.
        """
        async with self._lock:
            if name and name not in self._regions:
                raise NotFound(f"shared-memory region {name!r} is not registered")
            names = [name] if name else list(self._regions)
            for n in names:
                del self._regions[n]
            await asyncio.gather(*(_unregister(w, n) for w in self._workers() for n in names))

    async def replay(self, worker: Worker) -> None:
        """Give a joining worker every registration (before the router may pick it).

        Holds the lock throughout, so a registration made meanwhile waits and then sees the
        worker SERVING (the pool marks it right after this returns, with no await between).
        """
        async with self._lock:
            for request in list(self._regions.values()):
                await _unregister(worker, request.name)  # a stale one, if any
                error = await _register(worker, request)
                if error is not None:
                    log.warning(
                        "worker %s refused shared-memory region %r: %s",
                        worker.address,
                        request.name,
                        error.message,
                    )


async def _register(
    worker: Worker, request: pb.SystemSharedMemoryRegisterRequest
) -> RunnerFleetError | None:
    try:
        await worker.register_shm(request)
    except RunnerFleetError as exc:
        return exc
    return None


async def _unregister(worker: Worker, name: str) -> RunnerFleetError | None:
    try:
        await worker.unregister_shm(name)
    except RunnerFleetError as exc:
        return exc
    return None
