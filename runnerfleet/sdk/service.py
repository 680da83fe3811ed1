"""Service: named user APIs over runners, as in BentoML 1.x (``@svc.api(input=..., output=...)``).

A Service API is addressed on the wire by ``model_name`` = its name (the function's name unless
given), so names follow the model-name rule of DESIGN.md. The gateway binds each runner to a
remote backend, so the decorated function runs unchanged locally and in the cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from protos.errors import InvalidArgument
from runnerfleet.sdk.io import IODescriptor

__all__ = ["Service", "ServiceApi", "validate_name", "MAX_NAME_CHARS"]

# Same rule as model names and versions (DESIGN.md section 2).
_NAME_RE = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
MAX_NAME_CHARS = 63

F = TypeVar("F", bound=Callable[..., Any])


def validate_name(name: object, what: str) -> str:
    """``name`` if it is a valid service or API name, else raise InvalidArgument."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidArgument(
            f"{what} {name!r} is {len(name)} characters; at most {MAX_NAME_CHARS} allowed"
        )
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid {what} {name!r}: use lowercase letters, digits, '-', '.', '_' "
            "(starting and ending with a letter or digit)"
        )
    return name


def _check_descriptor(value: object, what: str) -> IODescriptor:
    if not isinstance(value, IODescriptor):
        raise InvalidArgument(
            f"{what} must be an IO descriptor such as runnerfleet.io.NumpyNdarray(), "
            f"got {type(value).__name__}"
        )
    return value


@dataclass(frozen=True)
class ServiceApi:
    """One API of a Service: its name, the user function (sync or async) and its IO."""

    name: str
    func: Callable[..., Any]
    input: IODescriptor
    output: IODescriptor

    @property
    def is_async(self) -> bool:
        """True when ``func`` is a coroutine function (run on the loop, not in an executor)."""
        return inspect.iscoroutinefunction(self.func)

    async def async_call(
        self, arr: Any, *, executor: concurrent.futures.Executor | None = None
    ) -> np.ndarray:
        """Validate the input, run ``func`` (sync ones in ``executor``), validate the output."""
        value = self.input.validate(arr)
        if self.is_async:
            result = await self.func(value)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(executor, functools.partial(self.func, value))
        return self.output.validate(result)

    def call(self, arr: Any) -> np.ndarray:
        """Run the API synchronously (tests, local use): validate, call, validate."""
        value = self.input.validate(arr)
        result = self.func(value)
        if inspect.isawaitable(result):
            raise InvalidArgument(f"API {self.name!r} is async; use async_call")
        return self.output.validate(result)


class Service:
    """A named set of APIs over some runners; register APIs with ``@svc.api(...)``."""

    def __init__(self, name: str, runners: Iterable[Any] | None = None) -> None:
        self.name = validate_name(name, "service name")
        self.runners: list[Any] = list(runners or [])
        self.apis: dict[str, ServiceApi] = {}
        seen: set[str] = set()
        for runner in self.runners:
            runner_name = getattr(runner, "name", None)
            if runner_name is None:
                raise InvalidArgument(f"service {name!r}: {runner!r} is not a runner (no .name)")
            if runner_name in seen:
                raise InvalidArgument(f"service {name!r}: runner {runner_name!r} listed twice")
            seen.add(runner_name)

    def __repr__(self) -> str:
        return f"Service({self.name!r}, apis={sorted(self.apis)})"

    def api(
        self, input: IODescriptor, output: IODescriptor, name: str | None = None
    ) -> Callable[[F], F]:
        """Decorator registering ``func`` as an API; returns ``func`` unchanged."""
        _check_descriptor(input, "input")
        _check_descriptor(output, "output")

        def register(func: F) -> F:
            if not callable(func):
                raise InvalidArgument(f"@{self.name}.api must decorate a function, got {func!r}")
            api_name = validate_name(name if name is not None else func.__name__, "API name")
            if api_name in self.apis:
                raise InvalidArgument(
                    f"service {self.name!r} already has an API named {api_name!r}; "
                    "pass name=... to register it under another name"
                )
            self.apis[api_name] = ServiceApi(api_name, func, input, output)
            return func

        return register
