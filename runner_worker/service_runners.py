"""The runners of a Service as models a worker hosts (``runnerfleet worker --service``).

A runner over a stored model is hosted as that model version; a custom runner (a user
``Runnable``) is hosted under its runner name, version ``CUSTOM_RUNNER_VERSION``. Either way the
hosting gets each method's batch options from the runner (``max_batch_size``,
``max_latency_ms``), so its batcher honours what the service file says. Custom runnables get
numpy arrays in; torch tensors they answer go back as numpy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from protos.errors import InvalidArgument
from store.model import ModelSignature, Runnable

__all__ = ["HostedRunner", "CustomRunnerModel", "service_runners"]


@dataclasses.dataclass(frozen=True)
class _Info:
    """The parts of a store ModelInfo the worker's hosting and describe code read."""

    name: str
    version: str
    module: str
    signatures: dict[str, ModelSignature]
    creation_time: dt.datetime  # when this worker loaded the service (decides nothing here)


class CustomRunnerModel:
    """A custom runner presented as a stored model: ``info`` and ``load_runnable(device)``."""

    def __init__(self, runner: Any) -> None:
        name, version = runner.address
        self.runner = runner
        self.info = _Info(
            name=name,
            version=version,
            module="custom",
            signatures={m.name: m.config.signature() for m in runner.runner_methods},
            creation_time=dt.datetime.now(dt.UTC),
        )

    def load_runnable(self, device: str = "cpu") -> Runnable:
        """One instance of the user's Runnable, each method answering numpy arrays."""
        params = dict(self.runner.runnable_init_params)
        if getattr(self.runner.runnable_class, "TAKES_DEVICE", False):
            params.setdefault("device", device)
        instance = self.runner.runnable_class(**params)
        methods = {name: _numpy_out(getattr(instance, name)) for name in self.info.signatures}
        return Runnable(methods=methods, device=device)


def _to_numpy(value: Any) -> Any:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().to("cpu").numpy()
    if isinstance(value, tuple | list):
        return tuple(_to_numpy(v) for v in value)
    return value


def _numpy_out(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _to_numpy(method(*args, **kwargs))

    return call


@dataclasses.dataclass(frozen=True)
class HostedRunner:
    """What to host for one runner: a model-like source and per-method batch options."""

    name: str
    source: Any
    options: dict[str, Any]  # method -> runnerfleet.sdk.runner_options.MethodOptions


def service_runners(spec: str, only: Sequence[str] = ()) -> list[HostedRunner]:
    """The runners of the service ``spec`` names (``module:attr``), or only those named."""
    from runnerfleet.sdk.service_loader import load_service

    service = load_service(spec)
    runners = {r.name: r for r in service.runners}
    missing = [n for n in only if n not in runners]
    if missing:
        raise InvalidArgument(
            f"--runners {','.join(missing)}: service {service.name!r} has runners {sorted(runners)}"
        )
    chosen = [runners[n] for n in only] if only else list(runners.values())
    hosted = []
    for runner in chosen:
        source = runner.model if runner.model is not None else CustomRunnerModel(runner)
        options = {name: m.options for name, m in runner.methods.items()}
        hosted.append(HostedRunner(runner.name, source, options))
    return hosted
