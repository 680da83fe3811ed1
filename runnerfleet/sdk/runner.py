"""Runners: a Runnable's methods behind a swappable backend (local, or a worker in the cluster).

``Runner(MyRunnable, name=..., runnable_init_params=..., models=[...])`` wraps a user Runnable;
``Model.to_runner()`` wraps the model's framework Runnable (``Model.to_runnable()``). Calls go
through the bound backend: ``init_local()`` binds a LocalBackend that runs each call in this
process as given (it does not batch); a Service's runners are bound to workers by the gateway.
Batch options (``max_batch_size``, ``max_latency_ms``, per method in ``method_configs``) are
carried to the worker that hosts the runner, whose batcher applies them; ``None`` = the
worker's own flag. A runner of a torch model answers torch tensors, locally and remotely.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from protos.errors import FailedPrecondition, InvalidArgument
from runnerfleet.sdk.model_runnable import model_runnable
from runnerfleet.sdk.runnable import Runnable, RunnableMethodConfig
from runnerfleet.sdk.runner_options import (
    MethodOptions,
    check_batch_sizes,
    normalize_method_configs,
    runner_name,
    to_framework_outputs,
)
from store.model import Model  # the store's: the SDK Model is a subclass

__all__ = ["Runner", "RunnerMethod", "RunnerBackend", "LocalBackend", "CUSTOM_RUNNER_VERSION"]

_log = logging.getLogger(__name__)

CUSTOM_RUNNER_VERSION = "1"  # the version a worker hosts a custom (non-model) runner under


class RunnerBackend(Protocol):
    """Executes a runner's method calls (in process, or on a remote worker)."""

    def call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any: ...

    async def async_call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any: ...


class LocalBackend:
    """Runs calls in this process on one instance of the runner's Runnable class."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance

    @classmethod
    def load(cls, model: Model, device: str = "cpu") -> LocalBackend:
        """A backend over a fresh instance of ``model.to_runnable()`` on ``device``."""
        return cls(model_runnable(model)(device=device))

    def _method(self, runner: Runner, method: str, args: tuple) -> Any:
        runner_method = runner.methods.get(method)
        if runner_method is not None:
            check_batch_sizes(runner_method.config, args, f"{runner.name}.{method}")
        return getattr(self.instance, method)

    def call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any:
        return self._method(runner, method, args)(*args, **kwargs)

    async def async_call(self, runner: Runner, method: str, args: tuple, kwargs: dict) -> Any:
        return await asyncio.to_thread(self._method(runner, method, args), *args, **kwargs)


class RunnerMethod:
    """One method of a runner: ``run`` (blocking), ``async_run`` and its batch options."""

    def __init__(
        self, runner: Runner, name: str, config: RunnableMethodConfig, options: MethodOptions
    ) -> None:
        self.runner = runner
        self.name = name
        self.config = config
        self.options = options

    @property
    def signature(self) -> Any:
        """The method's batchable/batch_dim facts as a store ModelSignature."""
        model = self.runner.model
        if model is not None and self.name in model.info.signatures:
            return model.info.signatures[self.name]
        return self.config.signature()

    @property
    def max_batch_size(self) -> int | None:
        """Most rows per batch on the worker (None = the worker's --max-batch-size)."""
        return self.options.max_batch_size

    @property
    def max_latency_ms(self) -> float | None:
        """Latency budget on the worker (None = the worker's --max-latency-ms)."""
        return self.options.max_latency_ms

    def run(self, *args: Any, **kwargs: Any) -> Any:
        result = self.runner.backend.call(self.runner, self.name, args, kwargs)
        return self.runner.framework_outputs(result)

    async def async_run(self, *args: Any, **kwargs: Any) -> Any:
        result = await self.runner.backend.async_call(self.runner, self.name, args, kwargs)
        return self.runner.framework_outputs(result)

    def __repr__(self) -> str:
        return f"RunnerMethod({self.runner.name}.{self.name})"


class Runner:
    """A Runnable's methods, callable wherever the runner is bound (see module docstring)."""

    def __init__(
        self,
        runnable_class: type[Runnable] | Model,
        *,
        runnable_init_params: Mapping[str, Any] | None = None,
        name: str | None = None,
        models: Iterable[Model] | None = None,
        max_batch_size: int | None = None,
        max_latency_ms: float | None = None,
        method_configs: Mapping[str, Mapping[str, Any]] | None = None,
        embedded: bool = False,
        scheduling_strategy: Any = None,
    ) -> None:
        self.model: Model | None = None
        if isinstance(runnable_class, Model):
            self.model = runnable_class
            runnable_class = model_runnable(runnable_class)
        if not (isinstance(runnable_class, type) and issubclass(runnable_class, Runnable)):
            raise InvalidArgument(
                f"Runner needs a runnerfleet.Runnable subclass or a stored Model, "
                f"got {runnable_class!r}"
            )
        default_name = self.model.tag.name if self.model else runnable_class.__name__
        self.name = runner_name(name if name is not None else default_name)
        self.runnable_class = runnable_class
        self.runnable_init_params = dict(runnable_init_params or {})
        self.models: list[Model] = list(models or [])
        if self.model is not None and self.model not in self.models:
            self.models.insert(0, self.model)
        self.embedded = bool(embedded)
        self.scheduling_strategy = scheduling_strategy
        configs = runnable_class.runnable_methods__
        if not configs:
            raise InvalidArgument(
                f"runnable {runnable_class.__qualname__} has no methods: mark them with "
                "@runnerfleet.Runnable.method"
            )
        options = normalize_method_configs(
            self.name, configs, max_batch_size, max_latency_ms, method_configs
        )
        self.methods: dict[str, RunnerMethod] = {
            method: RunnerMethod(self, method, m.config, options[method])
            for method, m in configs.items()
        }
        self._backend: RunnerBackend | None = None

    @property
    def runner_methods(self) -> list[RunnerMethod]:
        """Every method of this runner."""
        return list(self.methods.values())

    @property
    def address(self) -> tuple[str, str]:
        """(model_name, model_version) a worker hosts this runner under."""
        if self.model is not None:
            return self.model.tag.name, str(self.model.tag.version)
        return self.name, CUSTOM_RUNNER_VERSION

    @property
    def framework(self) -> str | None:
        """``pytorch`` when calls answer torch tensors, else None (numpy)."""
        if self.model is not None and self.model.info.module in ("pytorch", "torchscript"):
            return "pytorch"
        return None

    def framework_outputs(self, result: Any) -> Any:
        """``result`` as the framework's type (torch tensors for a torch model's runner)."""
        return to_framework_outputs(result, self.framework)

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

    def init_local(self, device: str = "cpu", quiet: bool = False) -> None:
        """Instantiate the Runnable in this process (BentoML's init_local, for scripts, tests)."""
        if not quiet:
            _log.warning(
                "runner %r runs in this process (init_local): for debugging and tests; "
                "serve it with a worker for batching",
                self.name,
            )
        params = dict(self.runnable_init_params)
        if getattr(self.runnable_class, "TAKES_DEVICE", False):
            params.setdefault("device", device)
        self.bind(LocalBackend(self.runnable_class(**params)))

    def destroy(self) -> None:
        """Release the local instance (or the remote binding); init_local() may follow."""
        self._backend = None

    def _call_method(self) -> RunnerMethod:
        if "__call__" in self.methods:
            return self.methods["__call__"]
        if len(self.methods) == 1:
            return next(iter(self.methods.values()))
        if "predict" in self.methods:  # BentoML: a scikit-learn runner's run() is predict
            return self.methods["predict"]
        raise FailedPrecondition(
            f"runner {self.name!r} has no __call__ signature; call one of "
            f"{sorted(self.methods)} as runner.<method>.run(...)"
        )

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The ``__call__`` method (else the only method, else ``predict``)."""
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
        what = f"model={self.model.tag}" if self.model else f"runnable={self.runnable_class}"
        return f"Runner(name={self.name!r}, {what}, methods={sorted(self.methods)})"
