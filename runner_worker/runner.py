"""One loaded model version: its Runnable, its device and the thread that runs its code.

Model code blocks (sklearn, torch), so it runs on one dedicated executor thread per model.
The one exception is the fast path: on CPU, a call whose input is no larger than one that
last ran in at most ``inline_max_s`` (0.2 ms by default, the worker's ``inline_max_ms``), while
the model thread is idle, runs inline on the event loop, sparing the thread hop (submit, wake,
call_soon_threadsafe) that costs more than such a model. Every call is timed, inline or not,
so a call that turns out slow sends calls of that size and larger back to the thread. The
torch adapter moves a batch's inputs to the device once per call and brings the outputs back
once, so a batch costs one transfer each way.
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

    def __init__(self, model: Any, device: str, *, inline_max_s: float = 0.0) -> None:
        """``inline_max_s`` > 0 turns the inline fast path on (CPU only)."""
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
        self._inline_max_s = inline_max_s if device == "cpu" else 0.0
        # per method: the largest input (elements) whose last call took <= inline_max_s
        self._inline_size: dict[str, int] = {}
        self._on_thread = 0  # calls submitted to the model thread and not finished

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
        """Run ``method`` on ``arrays`` (on the model thread, or inline when known to be fast);
        outputs as a list of arrays."""
        size = sum(int(a.size) for a in arrays)
        if self._on_thread == 0 and size <= self._inline_size.get(method, -1):
            return self._timed_call(method, arrays, size)
        self._on_thread += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, self._timed_call, method, arrays, size
            )
        finally:
            self._on_thread -= 1

    def _timed_call(self, method: str, arrays: list[np.ndarray], size: int) -> list[np.ndarray]:
        if self._inline_max_s <= 0:
            return batch_ops.as_outputs(self._runnable.methods[method](*arrays))
        start_s = time.perf_counter()
        try:
            return batch_ops.as_outputs(self._runnable.methods[method](*arrays))
        finally:
            self._learn(method, size, time.perf_counter() - start_s)

    def _learn(self, method: str, size: int, call_s: float) -> None:
        """Widen or narrow the inline size bound from one call (dict writes are atomic)."""
        bound = self._inline_size.get(method, -1)
        if call_s <= self._inline_max_s:
            if size > bound:
                self._inline_size[method] = size
        elif size <= bound:
            self._inline_size[method] = size - 1

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
