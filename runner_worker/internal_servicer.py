"""Thin gRPC servicer of the internal WorkerInternal service (called by the gateway)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protos import internal_pb2 as ipb
from protos import internal_pb2_grpc as ipb_grpc
from protos.errors import RunnerFleetError
from protos.status import status_number
from runner_worker import describe
from runner_worker.hosting import ModelHost
from runner_worker.inference import InferencePlane
from runner_worker.lifecycle import Lifecycle, State
from runner_worker.servicer import deadline_s
from runner_worker.settings import WorkerSettings

__all__ = ["InternalServicer"]


class InternalServicer(ipb_grpc.WorkerInternalServicer):
    """Gateway-facing rpcs: coalesced forwards, hosted-model description, drain."""

    def __init__(
        self,
        host: ModelHost,
        plane: InferencePlane,
        life: Lifecycle,
        settings: WorkerSettings,
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        self._host = host
        self._plane = plane
        self._life = life
        self._settings = settings
        self._drain = drain
        self.local_socket = ""  # the local link's socket, once it listens (local_server.py)

    async def ForwardBatch(self, request: Any, context: Any) -> ipb.ForwardBatchResponse:
        outer_deadline_s = deadline_s(context)
        results = await asyncio.gather(
            *(self._forward(item, outer_deadline_s) for item in request.items)
        )
        response = ipb.ForwardBatchResponse()
        add = response.results.add
        for code, payload, message in results:  # in place: no message per item to copy
            add(code=code, response=payload, message=message)
        return response

    async def _forward(self, item: Any, outer_deadline_s: float | None) -> tuple[int, bytes, str]:
        """One item's ForwardResult fields: (status number, response bytes, message)."""
        deadline_s = outer_deadline_s
        if item.timeout_s > 0:
            own = time.monotonic() + item.timeout_s
            deadline_s = own if deadline_s is None else min(own, deadline_s)
        try:
            response = await self._plane.infer_wire(
                item.request, deadline_s, item.traceparent or None
            )
        except RunnerFleetError as exc:
            return status_number(exc.code), b"", exc.message
        return 0, response, ""  # 0: OK

    async def DescribeModels(self, request: Any, context: Any) -> ipb.DescribeModelsResponse:
        # a hosted model is loaded and warmed up; it is ready while the worker admits work
        ready = self._life.state not in (State.DRAINING, State.STOPPED)
        models = [
            ipb.HostedModel(
                name=m.name,
                version=m.version,
                ready=ready,
                created_unix_s=m.created_unix_s,
                default_method=m.runner.default_method,
                methods=sorted(m.runner.methods),
                metadata=describe.model_metadata(m.runner, [m.version]),
                config=describe.config_of(m, self._settings),
            )
            for m in self._host.hosted()
        ]
        return ipb.DescribeModelsResponse(
            worker_id=self._life.worker_id,
            device=self._life.device,
            serving=self._life.serving,
            models=models,
            local_socket=self.local_socket,
        )

    async def Drain(self, request: Any, context: Any) -> ipb.DrainResponse:
        pending = self._host.pending()
        await self._drain()
        return ipb.DrainResponse(pending_requests=pending)
