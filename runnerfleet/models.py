"""``runnerfleet.models``: get, list, create, delete, export and import stored models.

Models come back as ``runnerfleet.sdk.model.Model`` (a ``store.Model`` with ``to_runner()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import store
from protos.errors import NotFound
from runnerfleet.model_export import export_as, plain_archive
from runnerfleet.sdk.model import Model, wrap
from runnerfleet.sdk.runner_options import lower_name
from store import Tag
from store.bentoml_import import as_rfmodel

__all__ = ["get", "list", "create", "delete", "export_model", "import_model", "import_archive"]

_log = logging.getLogger(__name__)
_builtin_list = list


def get(tag: str | Tag) -> Model:
    """The model ``tag`` names (``name``/``name:latest`` = newest; unique version prefixes)."""
    return wrap(store.get(tag))


def list(  # noqa: A001 - mirrors bentoml.models.list
    tag: str | Tag | None = None, labels: Mapping[str, str] | None = None
) -> _builtin_list[Model]:
    """Stored models, newest first within a name; ``tag`` = a name or ``name:version``."""
    if tag is None:
        return [wrap(m) for m in store.list(None, labels)]
    parsed = Tag.from_taglike(tag)
    if parsed.version is None:
        return [wrap(m) for m in store.list(parsed.name, labels)]
    try:
        model = store.get(parsed)
    except NotFound:
        return []
    if labels and any(model.info.labels.get(k) != v for k, v in labels.items()):
        return []
    return [wrap(model)]


def delete(tag: str | Tag) -> None:
    """Delete one version (``name:version``, ``name:latest``) or all versions (``name``)."""
    store.delete(tag)


def export_model(
    tag: str | Tag,
    path: str,
    output_format: str | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    sign_key: str | None = None,
) -> str:
    """Write ``tag`` to ``path``: a ``.rfmodel`` archive (the extension is added to a bare path),
    a compressed one (``output_format`` ``gz``/``xz``/``bz2``) or a ``folder``; return the path.
    ``sign_key`` signs the archive's manifest (see docs/SECURITY.md).
    """
    model = store.get(tag)
    name = f"{model.tag.name}-{model.tag.version}"
    return export_as(
        lambda target: store.export_model(model.tag, target, progress=progress, sign_key=sign_key),
        path,
        output_format,
        name,
    )


def import_archive(
    path: str,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    policy: store.TrustPolicy | None = None,
) -> store.ImportResult:
    """Import ``path``: a ``.rfmodel`` (compressed too) or a BentoML ``.bentomodel`` archive.

    A converted ``.bentomodel`` carries no signature, so a policy that requires one refuses it.
    """
    with plain_archive(path) as archive, as_rfmodel(archive) as rfmodel:
        return store.import_model(rfmodel, force=force, progress=progress, policy=policy)


def import_model(
    path: str,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    policy: store.TrustPolicy | None = None,
) -> Model:
    """Import a ``.rfmodel`` or ``.bentomodel`` archive; an identical version is left as is."""
    result = import_archive(path, force=force, progress=progress, policy=policy)
    _log.info(result.message)
    return wrap(result.model)


@contextlib.contextmanager
def create(
    name: str,
    *,
    module: str = "",
    labels: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    signatures: Mapping[str, Any] | None = None,
    context: Any = None,
) -> Iterator[Any]:
    """Write a model's files yourself (BentoML's ``models.create``); saved whole on exit.

    Yields a draft with ``path`` (a folder to write into) and ``path_of(name)``; when the block
    ends without an exception the folder becomes a new version (``module`` "files" unless
    given), atomically, with its manifest. ``load_model`` of such a model is the folder path.
    """
    name = lower_name(name, "model name")
    with tempfile.TemporaryDirectory(prefix="rf-create-") as tmp:
        draft = _Draft(tmp, name)
        yield draft
        from store.frameworks.files import FilesDir

        draft.model = wrap(
            store.save_model(
                "files",
                name,
                FilesDir(tmp),
                labels=dict(labels or {}),
                options={"module": module or "files", **dict(options or {})},
                metadata=dict(metadata or {}),
                custom_objects=custom_objects,
                signatures=signatures or {"__call__": {}},
            )
        )


class _Draft:
    """The model being written inside ``models.create``; ``model`` is set once saved."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self.model: Model | None = None

    def path_of(self, filename: str) -> str:
        return os.path.join(self.path, filename)

    @property
    def tag(self) -> Tag | None:
        return None if self.model is None else self.model.tag
