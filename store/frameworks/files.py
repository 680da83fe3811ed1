"""files adapter: a folder of files a user wrote (``runnerfleet.models.create``).

Saving copies the folder into the new version; loading answers the version's folder path,
since only the user knows how to read what they wrote. ``info.options`` records ``module``
(the name the user gave) and the options passed to ``create``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protos.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from store.model import Model

__all__ = [
    "FRAMEWORK",
    "FilesDir",
    "check",
    "save",
    "load",
    "default_signatures",
    "has_method",
    "make_method",
    "framework_version",
]

FRAMEWORK = "files"
_RESERVED = {"info.json", "manifest.json", "custom_objects.pkl"}


@dataclasses.dataclass(frozen=True)
class FilesDir:
    """The folder to save."""

    path: str


def framework_version() -> str:
    return ""


def check(obj: Any) -> None:
    if not isinstance(obj, FilesDir) or not os.path.isdir(obj.path):
        raise InvalidArgument("the files adapter saves a FilesDir (use runnerfleet.models.create)")
    clash = _RESERVED & set(os.listdir(obj.path))
    if clash:
        raise InvalidArgument(f"models.create: file names {sorted(clash)} are reserved")


def has_method(obj: Any, name: str) -> bool:
    return True  # nothing to check: the files have no methods until the user reads them


def default_signatures(obj: Any) -> dict[str, dict[str, Any]]:
    return {"__call__": {}}


def save(obj: FilesDir, directory: str) -> None:
    for entry in os.listdir(obj.path):
        src = os.path.join(obj.path, entry)
        dst = os.path.join(directory, entry)
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def load(model: Model, device: str = "cpu") -> str:
    """The version's folder (read your files from there)."""
    return model.path


def make_method(obj: Any, name: str, device: str = "cpu") -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise FailedPrecondition(
            "a model made with models.create has no runnable methods; load its files with "
            "model.path and subclass model.to_runnable() or write a runnerfleet.Runnable"
        )

    return call
