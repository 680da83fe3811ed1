"""``runnerfleet.Runnable``: user code a Runner hosts, with its methods marked for batching.

As in BentoML 1.x: subclass ``Runnable``, set ``SUPPORTED_RESOURCES`` and
``SUPPORTS_CPU_MULTI_THREADING``, load what you need in ``__init__`` and mark each method a
runner exposes with ``@Runnable.method(batchable=..., batch_dim=...)``. ``Runner(MyRunnable,
...)`` then runs it locally (``init_local``) or on a worker (``runnerfleet worker --service``).
A subclass inherits its parent's methods and may add or override them; the parent is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, overload

from protos.errors import InvalidArgument
from store.model import ModelSignature

__all__ = ["Runnable", "RunnableMethod", "RunnableMethodConfig", "normalize_batch_dim"]

F = TypeVar("F", bound=Callable[..., Any])


def normalize_batch_dim(value: Any, where: str) -> tuple[int, int]:
    """``batch_dim`` as an (input, output) pair: ``0`` -> ``(0, 0)``; refuses anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise InvalidArgument(f"{where}: batch_dim must be an int or an (input, output) pair of ints")


@dataclasses.dataclass(frozen=True)
class RunnableMethodConfig:
    """How a runnable method may be called: batchable and along which axes."""

    batchable: bool = False
    batch_dim: tuple[int, int] = (0, 0)
    input_spec: Any = None
    output_spec: Any = None

    def signature(self) -> ModelSignature:
        """The same facts as a store ModelSignature (what the worker's hosting reads)."""
        return ModelSignature(batchable=self.batchable, batch_dim=self.batch_dim)


class RunnableMethod:
    """A method marked with ``@Runnable.method``: the function and its config."""

    def __init__(self, func: Callable[..., Any], config: RunnableMethodConfig) -> None:
        self.func = func
        self.config = config
        self.name = getattr(func, "__name__", "method")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.func.__get__(instance, owner)

    def __call__(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        return self.func(instance, *args, **kwargs)

    def __repr__(self) -> str:
        return f"RunnableMethod({self.name}, {self.config})"


class Runnable:
    """Base class of user runnables (see the module docstring)."""

    SUPPORTED_RESOURCES: ClassVar[tuple[str, ...]] = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING: ClassVar[bool] = False
    runnable_methods__: ClassVar[dict[str, RunnableMethod]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.runnable_methods__ = _collect_methods(cls)

    @overload
    @staticmethod
    def method(meth: F) -> F: ...

    @overload
    @staticmethod
    def method(
        meth: None = None,
        *,
        batchable: bool = False,
        batch_dim: int | tuple[int, int] = 0,
        input_spec: Any = None,
        output_spec: Any = None,
    ) -> Callable[[F], F]: ...

    @staticmethod
    def method(
        meth: Callable[..., Any] | None = None,
        *,
        batchable: bool = False,
        batch_dim: int | tuple[int, int] = 0,
        input_spec: Any = None,
        output_spec: Any = None,
    ) -> Any:
        """Mark a method as callable through a Runner (``@Runnable.method`` or with options)."""

        def mark(func: Callable[..., Any]) -> Any:
            if not callable(func):
                raise InvalidArgument(f"@Runnable.method must decorate a function, got {func!r}")
            where = f"runnable method {getattr(func, '__name__', func)!r}"
            config = RunnableMethodConfig(
                bool(batchable), normalize_batch_dim(batch_dim, where), input_spec, output_spec
            )
            return RunnableMethod(func, config)

        return mark if meth is None else mark(meth)

    @classmethod
    def add_method(
        cls,
        method: Callable[..., Any],
        name: str,
        *,
        batchable: bool = False,
        batch_dim: int | tuple[int, int] = 0,
        input_spec: Any = None,
        output_spec: Any = None,
    ) -> None:
        """Add ``method`` (a function taking ``self``) to this class as runnable ``name``."""
        config = RunnableMethodConfig(
            bool(batchable),
            normalize_batch_dim(batch_dim, f"runnable method {name!r}"),
            input_spec,
            output_spec,
        )
        marked = RunnableMethod(method, config)
        marked.name = name
        setattr(cls, name, marked)
        if "runnable_methods__" not in vars(cls):
            cls.runnable_methods__ = dict(cls.runnable_methods__)
        cls.runnable_methods__[name] = marked


def _collect_methods(cls: type) -> dict[str, RunnableMethod]:
    """The marked methods of ``cls`` and its bases, nearest definition winning.

    A plain method that overrides a marked one stays runnable with the parent's config, so a
    subclass of ``Model.to_runnable()`` can replace ``predict`` without marking it again.
    """
    table: dict[str, RunnableMethod] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, RunnableMethod):
                table[name] = value
            elif name in table and callable(value):
                override = RunnableMethod(value, table[name].config)
                override.name = name
                table[name] = override
    return table
