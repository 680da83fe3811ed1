"""Pickle user objects by value with cloudpickle, as BentoML 1.x does.

Plain pickle stores a class as a reference (``__main__.Net``), so a model trained in a script or
a notebook saves without error and then no other process can load it. cloudpickle writes classes
and functions defined in ``__main__`` (and in the ``external_modules`` a user names) by value, so
the saved file carries their code. Loading needs only ``pickle`` (and cloudpickle importable).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable, Iterator
from typing import Any

from protos.errors import InvalidArgument

__all__ = ["dumps", "check_modules", "registered"]


def check_modules(modules: Iterable[Any] | None) -> tuple[types.ModuleType, ...]:
    """``external_modules`` as a tuple of modules, refusing anything else by name."""
    if modules is None:
        return ()
    checked = []
    for module in modules:
        if not isinstance(module, types.ModuleType):
            raise InvalidArgument(
                f"external_modules must hold imported modules, got {type(module).__name__} "
                f"({module!r})"
            )
        checked.append(module)
    return tuple(checked)


@contextlib.contextmanager
def registered(modules: Iterable[types.ModuleType]) -> Iterator[None]:
    """While open, cloudpickle writes everything defined in ``modules`` by value."""
    import cloudpickle

    added = []
    try:
        for module in modules:
            if module.__name__ in cloudpickle.list_registry_pickle_by_value():
                continue
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def dumps(obj: Any, what: str) -> bytes:
    """``obj`` pickled by cloudpickle; InvalidArgument naming ``what`` if it cannot be."""
    import pickle

    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # pickling user objects can raise anything
        raise InvalidArgument(f"{what} cannot be pickled: {type(exc).__name__}: {exc}") from exc
