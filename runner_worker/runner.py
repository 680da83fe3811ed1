"""One loaded model version: its Runnable, its device and the thread that runs its code.

Model code blocks (sklearn, torch), so it runs on one dedicated executor thread per model,
never on the event loop. The torch adapter moves a batch's inputs to the device once per call
and brings the outputs back once, so a batch costs one transfer each way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from typing import Any

import numpy as np

from protos.errors import NotFound, shown
from runner_worker import batch_ops

__all__ = ["MethodInfo", "ModelRunner", "sample_inputs"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MethodInfo:
    """What the worker knows about one method from the saved signature."""

    name: str
    batchable: bool
    batch_dim: tuple[int, int]
    input_spec: tuple[Any, ...] | None
    output_spec: tuple[Any, ...] | None

    def input_names(self, count: int) -> list[str]:
        """Input names from the spec, else ``input__0, ...``."""
        if self.input_spec and len(self.input_spec) == count:
            return [s.name for s in self.input_spec]
        return [f"input__{i}" for i in range(count)]

    def output_names(self, count: int) -> list[str]:
        """Output names from the spec, else ``output__0, ...``."""
        if self.output_spec and len(self.output_spec) == count:
            return [s.name for s in self.output_spec]
        return [f"output__{i}" for i in range(count)]


class ModelRunner:
    """Loads a stored model on a device and runs its methods on a dedicated thread."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        self.name: str = model.info.name
        self.version: str = model.info.version
        self.platform: str = model.info.module
        self.methods: dict[str, MethodInfo] = {
            name: MethodInfo(
                name=name,
                batchable=bool(sig.batchable),
                batch_dim=batch_ops.normalize_batch_dim(sig.batch_dim),
                input_spec=tuple(sig.input_spec) if sig.input_spec is not None else None,
                output_spec=tuple(sig.output_spec) if sig.output_spec is not None else None,
            )
            for name, sig in model.info.signatures.items()
        }
        self._runnable: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"model-{self.name}"
        )

    @property
    def default_method(self) -> str:
        """The Runnable's default method (the only one, else ``__call__``, else ``predict``)."""
        return str(self._runnable.default_method)

    def method(self, name: str) -> MethodInfo:
        """The named method, or NotFound listing the ones there are."""
        info = self.methods.get(name)
        if info is None or (self._runnable is not None and name not in self._runnable.methods):
            raise NotFound(
                f"model {self.name!r} version {self.version!r} has no method {shown(name)}; "
                f"methods: {', '.join(sorted(self.methods))}"
            )
        return info

    async def load(self, *, warmup: bool = True) -> float:
        """Load onto the device, warm every method up (unless not asked); return the seconds.

        Warm-up runs each method once on zero inputs shaped by its input spec (methods without
        a spec are skipped), so the first request does not pay for lazy initialisation.
        """
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        if self.device.startswith("cuda"):
            await loop.run_in_executor(self._executor, _use_cuda_device, self.device)
        self._runnable = await loop.run_in_executor(
            self._executor, self.model.load_runnable, self.device
        )
        for info in self.methods.values() if warmup else ():
            sample = sample_inputs(info)
            if sample is None:
                continue
            try:
                await self.run(info.name, sample)
            except Exception as exc:  # noqa: BLE001 - a warm-up failure must not stop serving
                _log.warning("warm-up of %s.%s failed: %s", self.name, info.name, exc)
        return time.perf_counter() - start

    async def run(self, method: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run ``method`` on ``arrays`` on the model thread; outputs as a list of arrays."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, method, arrays)

    def _call(self, method: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return batch_ops.as_outputs(self._runnable.methods[method](*arrays))

    def close(self) -> None:
        """Release the model thread (running calls finish first)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._runnable = None


def _use_cuda_device(device: str) -> None:
    """Make ``device`` current on the model thread (CUDA's current device is per thread)."""
    import torch

    torch.cuda.set_device(torch.device(device))


def sample_inputs(info: MethodInfo) -> list[np.ndarray] | None:
    """Zero inputs shaped by the spec (any size -> 1), or None when there is no spec."""
    if not info.input_spec:
        return None
    arrays = []
    for spec in info.input_spec:
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        dtype = np.dtype(spec.dtype)
        arrays.append(np.zeros(shape, dtype=dtype) if dtype.kind != "O" else np.full(shape, b""))
    return arrays
