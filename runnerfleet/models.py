"""``runnerfleet.models``: get, list, delete, export and import stored models.

Models come back as ``runnerfleet.sdk.model.Model`` (a ``store.Model`` with ``to_runner()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import store
from runnerfleet.sdk.model import Model, wrap
from store import Tag

__all__ = ["get", "list", "delete", "export_model", "import_model"]

_log = logging.getLogger(__name__)
_builtin_list = list


def get(tag: str | Tag) -> Model:
    """The model ``tag`` names (``name``/``name:latest`` = newest; unique version prefixes)."""
    return wrap(store.get(tag))


def list(  # noqa: A001 - mirrors bentoml.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None
) -> _builtin_list[Model]:
    """Stored models, filtered by ``name`` and by ``labels`` (all must match)."""
    return [wrap(m) for m in store.list(name, labels)]


def delete(tag: str | Tag) -> None:
    """Delete one version (``name:version``, ``name:latest``) or all versions (``name``)."""
    store.delete(tag)


def export_model(
    tag: str | Tag,
    path: str,
    progress: Callable[[int], None] | None = None,
    *,
    sign_key: str | None = None,
) -> str:
    """Write ``tag`` to a single-file ``.rfmodel`` archive (signed with ``sign_key``)."""
    return store.export_model(tag, path, progress=progress, sign_key=sign_key)


def import_model(
    path: str,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    policy: store.TrustPolicy | None = None,
) -> Model:
    """Import a ``.rfmodel`` archive; an identical version already stored is left as is."""
    result = store.import_model(path, force=force, progress=progress, policy=policy)
    _log.info(result.message)
    return wrap(result.model)
