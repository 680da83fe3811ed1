"""The CUDA shared-memory rpcs both servicers answer alike: UNIMPLEMENTED, saying what to use.

RunnerFleet serves system shared memory only (``protos/shm.py``); CUDA shared memory would need
a GPU build and tests on a GPU machine. One mixin, so gateway and worker refuse it in one way
over gRPC, and one refusal (``cuda_shm_refusal``) that the HTTP routes answer as well.
"""

from __future__ import annotations

from typing import Any

from protos.errors import Unimplemented
from protos.status import aborts_on_error

__all__ = ["CudaSharedMemoryRefusal", "cuda_shm_refusal"]

_MESSAGE = (
    "CUDA shared memory is not supported by RunnerFleet; use system shared memory "
    "(SystemSharedMemoryRegister, or HTTP v2/systemsharedmemory) or send tensor bytes"
)


def cuda_shm_refusal() -> Unimplemented:
    """The one refusal of every CUDA shared-memory call, gRPC rpc or HTTP route."""
    return Unimplemented(_MESSAGE)


class CudaSharedMemoryRefusal:
    """CudaSharedMemoryStatus/Register/Unregister: UNIMPLEMENTED with the reason."""

    @aborts_on_error
    async def CudaSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        raise cuda_shm_refusal()

    @aborts_on_error
    async def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        raise cuda_shm_refusal()

    @aborts_on_error
    async def CudaSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        raise cuda_shm_refusal()
