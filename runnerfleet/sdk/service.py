"""Service: named user APIs over runners, as in BentoML 1.x (``@svc.api(input=..., output=...)``).

A Service API is addressed on the wire by ``model_name`` = its name (the function's name unless
given), so names follow the model-name rule of DESIGN.md (upper case is lowered with a
warning, as BentoML does). The gateway binds each runner to a remote backend, so the decorated
function runs unchanged locally and in the cluster. An API may take a ``ctx: runnerfleet.Context``
parameter; a ``Multipart`` input arrives as keyword arguments, one per part. ``on_deployment``
hooks run once when the gateway loads the service, ``on_startup`` / ``on_shutdown`` hooks
(given a Context whose ``state`` every request shares) when it starts and stops.
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

from protos.errors import InvalidArgument
from runnerfleet.sdk.context import Context
from runnerfleet.sdk.io import IODescriptor, Multipart
from runnerfleet.sdk.runner_options import lower_name

__all__ = ["Service", "ServiceApi", "validate_name", "MAX_NAME_CHARS"]

# Same rule as model names and versions (DESIGN.md section 2).
_NAME_RE = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
MAX_NAME_CHARS = 63
_CONTEXT_NAMES = ("ctx", "context")

F = TypeVar("F", bound=Callable[..., Any])


def validate_name(name: object, what: str) -> str:
    """``name`` (lower-cased with a warning) if it is a valid service or API name, else raise."""
    name = lower_name(name, what)
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


def _context_param(func: Callable[..., Any]) -> str | None:
    """The parameter that receives a Context: annotated ``Context`` or named ctx/context."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return None
    for name, param in params.items():
        annotation = param.annotation
        if annotation is Context or (isinstance(annotation, str) and "Context" in annotation):
            return name
    return next((n for n in _CONTEXT_NAMES if n in params), None)


@dataclass(frozen=True)
class ServiceApi:
    """One API of a Service: its name, the user function (sync or async), its IO and docs."""

    name: str
    func: Callable[..., Any]
    input: IODescriptor
    output: IODescriptor
    doc: str | None = None
    route: str | None = None

    @property
    def is_async(self) -> bool:
        """True when ``func`` is a coroutine function (run on the loop, not in an executor)."""
        return inspect.iscoroutinefunction(self.func)

    @functools.cached_property
    def context_param(self) -> str | None:
        """The name of the parameter that takes a Context, or None."""
        return _context_param(self.func)

    def bind_args(self, value: Any, ctx: Context | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments: the input (parts as keywords for Multipart), then the context."""
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if isinstance(self.input, Multipart):
            kwargs.update(value)
        else:
            args = (value,)
        if self.context_param is not None:
            kwargs[self.context_param] = ctx if ctx is not None else Context()
        return args, kwargs

    async def async_call(
        self,
        value: Any,
        *,
        executor: concurrent.futures.Executor | None = None,
        ctx: Context | None = None,
    ) -> Any:
        """Validate the input, run ``func`` (sync ones in ``executor``), validate the output."""
        args, kwargs = self.bind_args(self.input.validate(value), ctx)
        if self.is_async:
            result = await self.func(*args, **kwargs)
        else:
            loop = asyncio.get_running_loop()
            call = functools.partial(self.func, *args, **kwargs)
            result = await loop.run_in_executor(executor, call)
        return self.output.validate(result)

    def call(self, value: Any, ctx: Context | None = None) -> Any:
        """Run the API synchronously (tests, local use): validate, call, validate."""
        args, kwargs = self.bind_args(self.input.validate(value), ctx)
        result = self.func(*args, **kwargs)
        if inspect.isawaitable(result):
            raise InvalidArgument(f"API {self.name!r} is async; use async_call")
        return self.output.validate(result)


class Service:
    """A named set of APIs over some runners; register APIs with ``@svc.api(...)``."""

    def __init__(
        self,
        name: str,
        runners: Iterable[Any] | None = None,
        models: Iterable[Any] | None = None,
    ) -> None:
        self.name = validate_name(name, "service name")
        self.runners: list[Any] = list(runners or [])
        self.models: list[Any] = list(models or [])
        self.apis: dict[str, ServiceApi] = {}
        self.startup_hooks: list[Callable[..., Any]] = []
        self.shutdown_hooks: list[Callable[..., Any]] = []
        self.deployment_hooks: list[Callable[..., Any]] = []
        seen: set[str] = set()
        for runner in self.runners:
            runner_name = getattr(runner, "name", None)
            if runner_name is None:
                raise InvalidArgument(f"service {name!r}: {runner!r} is not a runner (no .name)")
            if runner_name in seen:
                raise InvalidArgument(f"service {name!r}: runner {runner_name!r} listed twice")
            seen.add(runner_name)
        for model in self.models:
            if getattr(model, "tag", None) is None:
                raise InvalidArgument(f"service {name!r}: {model!r} is not a stored model")

    def __repr__(self) -> str:
        return f"Service({self.name!r}, apis={sorted(self.apis)})"

    def api(
        self,
        input: IODescriptor,
        output: IODescriptor,
        name: str | None = None,
        doc: str | None = None,
        route: str | None = None,
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
            api_route = route if route is not None else f"/{api_name}"
            if not api_route.startswith("/"):
                raise InvalidArgument(f"API {api_name!r}: route must start with '/': {route!r}")
            api_doc = doc if doc is not None else inspect.getdoc(func)
            self.apis[api_name] = ServiceApi(api_name, func, input, output, api_doc, api_route)
            return func

        return register

    def on_startup(self, func: F) -> F:
        """Run ``func(ctx)`` (sync or async) when a gateway serving this service starts."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: F) -> F:
        """Run ``func(ctx)`` (sync or async) when a gateway serving this service stops."""
        self.shutdown_hooks.append(func)
        return func

    def on_deployment(self, func: F) -> F:
        """Run ``func()`` once when a gateway loads this service, before it serves."""
        self.deployment_hooks.append(func)
        return func
