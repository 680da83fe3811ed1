"""Runners: a model's signature methods behind a swappable backend (local now, remote later).

``runner.<method>.run(...)`` and ``await runner.<method>.async_run(...)`` go through the bound
backend; ``runner.run`` is the ``__call__`` method. ``init_local()`` binds a LocalBackend that
runs each call in this process as given: it does not batch. Whoever batches (the worker)
concatenates inputs along ``batch_dim[0]`` and splits outputs along ``batch_dim[1]``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from protos.errors import FailedPrecondition
from store.model import Model, ModelSignature, Runnable

__all__ = ["Runner", "RunnerMethod", "RunnerBackend", "LocalBackend"]


class RunnerBackend(Protocol):
    """Executes a runner's method calls (in process, or on a remote worker)."""

    def call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any: ...

    async def async_call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any: ...


class LocalBackend:
    """Runs calls in this process on a Runnable loaded on ``device``."""

    def __init__(self, runnable: Runnable) -> None:
        self.runnable = runnable

    @classmethod
    def load(cls, model: Model, device: str = "cpu") -> LocalBackend:
        return cls(model.load_runnable(device))

    def call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any:
        return self.runnable.methods[method](*args, **kwargs)

    async def async_call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any:
        return await asyncio.to_thread(self.runnable.methods[method], *args, **kwargs)


class RunnerMethod:
    """One signature method of a runner: ``run`` (blocking) and ``async_run``."""

    def __init__(self, runner: Runner, name: str, signature: ModelSignature) -> None:
        self.runner = runner
        self.name = name
        self.signature = signature

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.runner.backend.call(self.runner, self.name, args, kwargs)

    async def async_run(self, *args: Any, **kwargs: Any) -> Any:
        return await self.runner.backend.async_call(self.runner, self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"RunnerMethod({self.runner.name}.{self.name})"


class Runner:
    """A model's methods, callable wherever the runner is bound (see module docstring)."""

    def __init__(self, model: Model, name: str | None = None) -> None:
        self.model = model
        self.name = name or model.tag.name
        self.methods: dict[str, RunnerMethod] = {
            method: RunnerMethod(self, method, sig) for method, sig in model.info.signatures.items()
        }
        self._backend: RunnerBackend | None = None

    @property
    def backend(self) -> RunnerBackend:
        if self._backend is None:
            raise FailedPrecondition(
                f"runner {self.name!r} is not initialised: call init_local() or serve it"
            )
        return self._backend

    def bind(self, backend: RunnerBackend) -> None:
        """Route every method call through ``backend`` (replacing any earlier binding)."""
        self._backend = backend

    def init_local(self, device: str = "cpu") -> None:
        """Load the model in this process (BentoML's init_local, for scripts and tests)."""
        self.bind(LocalBackend.load(self.model, device))

    def _call_method(self) -> RunnerMethod:
        if "__call__" in self.methods:
            return self.methods["__call__"]
        if len(self.methods) == 1:
            return next(iter(self.methods.values()))
        raise FailedPrecondition(
            f"runner {self.name!r} has no __call__ signature; call one of "
            f"{sorted(self.methods)} as runner.<method>.run(...)"
        )

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The ``__call__`` method (or the only method)."""
        return self._call_method().run(*args, **kwargs)

    async def async_run(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call_method().async_run(*args, **kwargs)

    def __getattr__(self, name: str) -> RunnerMethod:
        methods = self.__dict__.get("methods", {})
        if name in methods:
            return methods[name]  # type: ignore[no-any-return]
        raise AttributeError(
            f"runner {self.__dict__.get('name')!r} has no method {name!r}; it has {sorted(methods)}"
        )

    def __repr__(self) -> str:
        return f"Runner(name={self.name!r}, model={self.model.tag}, methods={sorted(self.methods)})"
