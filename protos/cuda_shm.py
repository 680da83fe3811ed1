"""The CUDA shared-memory rpcs both servicers answer alike: UNIMPLEMENTED, saying what to use.

RunnerFleet serves system shared memory only (``protos/shm.py``); CUDA shared memory would need
a GPU build and tests on a GPU machine. One mixin, so gateway and worker refuse it in one way.
"""

from __future__ import annotations

from typing import Any

from protos.errors import Unimplemented
from protos.status import aborts_on_error

__all__ = ["CudaSharedMemoryRefusal"]

_MESSAGE = (
    "CUDA shared memory is not supported by RunnerFleet; use system shared memory "
    "(SystemSharedMemoryRegister) or send tensor bytes"
)


class CudaSharedMemoryRefusal:
    """CudaSharedMemoryStatus/Register/Unregister: UNIMPLEMENTED with the reason."""

    @aborts_on_error
    async def CudaSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        raise Unimplemented(_MESSAGE)

    @aborts_on_error
    async def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        raise Unimplemented(_MESSAGE)

    @aborts_on_error
    async def CudaSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        raise Unimplemented(_MESSAGE)
