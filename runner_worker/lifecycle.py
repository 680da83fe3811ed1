"""The worker's explicit lifecycle: LOADING -> SERVING -> DRAINING -> STOPPED.

Each transition updates gRPC health (service "" and the inference service) and the
``runnerfleet_worker_up`` gauge together, so the gateway and dashboards agree.
"""

from __future__ import annotations

import asyncio
import enum
import logging

from grpc_health.v1 import health, health_pb2

from runner_worker.metrics import WorkerMetrics

__all__ = ["State", "Lifecycle", "HEALTH_SERVICES"]

_log = logging.getLogger(__name__)
HEALTH_SERVICES = ("", "inference.GRPCInferenceService", "runnerfleet.internal.v1.WorkerInternal")


class State(enum.Enum):
    """Where the worker is in its life."""

    LOADING = "LOADING"
    SERVING = "SERVING"
    DRAINING = "DRAINING"
    STOPPED = "STOPPED"


class Lifecycle:
    """Owns the state, the health servicer and the stop request."""

    def __init__(self, worker_id: str, device: str, metrics: WorkerMetrics) -> None:
        self.worker_id = worker_id
        self.device = device
        self.state = State.LOADING
        self.health = health.aio.HealthServicer()
        self.stop_requested = asyncio.Event()
        self._metrics = metrics

    @property
    def serving(self) -> bool:
        return self.state is State.SERVING

    async def enter(self, state: State) -> None:
        """Move to ``state`` and publish it (health and the up gauge)."""
        if self.state is State.DRAINING and state is State.SERVING:
            return
        self.state = state
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if state is State.SERVING
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            await self.health.set(service, status)
        self._metrics.set_up(state is State.SERVING)
        _log.info("worker %s: %s", self.worker_id, state.value)
