"""picklable_model adapter: any Python object, pickled by value with cloudpickle.

For models no framework adapter knows (BentoML's ``bentoml.picklable_model``): the object's
methods are called as they are, with whatever the caller passes.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protos.errors import InvalidArgument

if TYPE_CHECKING:
    from store.model import Model

__all__ = [
    "FRAMEWORK",
    "check",
    "save",
    "load",
    "default_signatures",
    "has_method",
    "make_method",
    "framework_version",
]

FRAMEWORK = "picklable_model"
_FILE = "model.pkl"


def framework_version() -> str:
    from importlib.metadata import version

    return version("cloudpickle")


def check(obj: Any) -> None:
    if obj is None:
        raise InvalidArgument("runnerfleet.picklable_model.save_model needs an object, got None")


def has_method(obj: Any, name: str) -> bool:
    return callable(obj) if name == "__call__" else callable(getattr(obj, name, None))


def default_signatures(obj: Any) -> dict[str, dict[str, Any]]:
    """``__call__`` for a callable object, else ``predict`` when it has one."""
    for name in ("__call__", "predict"):
        if has_method(obj, name):
            return {name: {"batchable": False}}
    raise InvalidArgument(
        f"{type(obj).__name__} is not callable and has no predict: pass signatures="
    )


def save(obj: Any, directory: str) -> None:
    from store.by_value import dumps

    with open(os.path.join(directory, _FILE), "wb") as f:
        f.write(dumps(obj, f"object of type {type(obj).__qualname__}"))


def load(model: Model, device: str = "cpu") -> Any:
    with open(model.path_of(_FILE), "rb") as f:
        return pickle.load(f)  # noqa: S301 - the store is trusted (DESIGN.md section 2)


def make_method(obj: Any, name: str, device: str = "cpu") -> Callable[..., Any]:
    return obj if name == "__call__" else getattr(obj, name)  # type: ignore[no-any-return]
