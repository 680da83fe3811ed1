"""The model store (no grpc): tags, save/get/list/delete, export/import, framework adapters.

Module-level functions use the store at ``$RUNNERFLEET_HOME`` (default ``~/runnerfleet``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping

from store.archive import ImportResult
from store.archive import export_model as _export
from store.archive import import_model as _import
from store.fs_store import FileStore, default_root, default_store
from store.integrity import IntegrityError, SignatureError
from store.model import Model, ModelInfo, ModelSignature, Runnable, TensorSpec
from store.policy import TrustPolicy, policy_from_env
from store.saving import save_model
from store.tag import Tag

__all__ = [
    "Tag",
    "Model",
    "ModelInfo",
    "ModelSignature",
    "TensorSpec",
    "Runnable",
    "FileStore",
    "ImportResult",
    "TrustPolicy",
    "IntegrityError",
    "SignatureError",
    "policy_from_env",
    "default_root",
    "default_store",
    "save_model",
    "get",
    "list",
    "delete",
    "export_model",
    "import_model",
]


def get(tag: str | Tag) -> Model:
    """The model ``tag`` names; NotFound if absent, InvalidArgument if the tag is malformed."""
    return default_store().get(tag)


def list(  # noqa: A001 - mirrors bentoml.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None
) -> builtins.list[Model]:
    """Stored models, optionally only those of ``name`` and carrying all ``labels``."""
    return default_store().list(name, labels)


def delete(tag: str | Tag) -> builtins.list[Tag]:
    """Delete ``name:version`` (or ``name:latest``), or every version when only a name is given."""
    return default_store().delete(tag)


def export_model(
    tag: str | Tag,
    path: str,
    progress: Callable[[int], None] | None = None,
    *,
    sign_key: str | None = None,
) -> str:
    """Write ``tag`` to a ``.rfmodel`` archive at ``path`` (signed with ``sign_key``)."""
    return _export(tag, path, progress=progress, sign_key=sign_key)


def import_model(
    path: str,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    policy: TrustPolicy | None = None,
) -> ImportResult:
    """Import a ``.rfmodel`` archive (verified); see ImportResult.outcome for what happened."""
    return _import(path, force=force, progress=progress, policy=policy)
