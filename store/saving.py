"""save_model for any framework: validate, stage, write files and manifest, commit atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata as importlib_metadata
from types import ModuleType
from typing import Any

from protos.errors import InvalidArgument
from store import by_value
from store.fs_store import FileStore, checkpoint, default_store
from store.manifest import build_manifest, write_manifest
from store.metadata import normalize_labels, normalize_metadata
from store.model import CUSTOM_OBJECTS_FILE, INFO_FILE, Model, ModelInfo
from store.signatures import infer_specs, normalize_signatures
from store.staging import fsync_tree
from store.tag import Tag, new_version, validate_part

__all__ = ["save_model", "runnerfleet_version"]


def runnerfleet_version() -> str:
    try:
        return importlib_metadata.version("runnerfleet")
    except importlib_metadata.PackageNotFoundError:
        return "0.0.0"


def _pickle_custom_objects(custom_objects: Mapping[str, Any], directory: str) -> None:
    if not isinstance(custom_objects, Mapping):
        raise InvalidArgument("custom_objects must be a dict of name -> picklable object")
    for key in custom_objects:
        if not isinstance(key, str):
            raise InvalidArgument(f"custom_objects key {key!r} must be a string")
    payload = by_value.dumps(dict(custom_objects), "custom_objects")
    with open(os.path.join(directory, CUSTOM_OBJECTS_FILE), "wb") as f:
        f.write(payload)


def save_model(
    module: str,
    name: str,
    obj: Any,
    *,
    signatures: Mapping[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    sample_input: Any = None,
    external_modules: Iterable[ModuleType] | None = None,
    options: Mapping[str, Any] | None = None,
    store: FileStore | None = None,
) -> Model:
    """Save ``obj`` with the ``module`` adapter as a new version of ``name``; return it.

    ``external_modules``: modules whose classes and functions are pickled by value with the
    model (as in BentoML), for code that the serving processes cannot import.
    """
    from store.frameworks import get_adapter

    adapter = get_adapter(module)
    validate_part(name, "name")
    adapter.check(obj)
    by_value_modules = by_value.check_modules(external_modules)
    sigs, names = normalize_signatures(
        signatures if signatures is not None else adapter.default_signatures(obj),
        lambda method: adapter.has_method(obj, method),
        f"{type(obj).__module__}.{type(obj).__qualname__}",
    )
    clean_labels = normalize_labels(labels)
    clean_metadata = normalize_metadata(metadata)
    if sample_input is not None:
        device = getattr(adapter, "module_device", lambda _o: "cpu")(obj)
        sigs = {
            method: infer_specs(
                sig, method, adapter.make_method(obj, method, device), sample_input, names[method]
            )
            for method, sig in sigs.items()
        }
    store = store or default_store()
    tag = Tag(name, new_version())
    info = ModelInfo(
        name=name,
        version=str(tag.version),
        module=module,
        labels=clean_labels,
        metadata=clean_metadata,
        creation_time=dt.datetime.now(dt.UTC),
        signatures=sigs,
        context={
            "framework": adapter.FRAMEWORK,
            "framework_version": adapter.framework_version(),
            "python_version": platform.python_version(),
            "runnerfleet_version": runnerfleet_version(),
        },
        options=normalize_metadata(dict(options or {})),
    )
    with store.staging("save") as staged:
        checkpoint("staging_created")
        with by_value.registered(by_value_modules):
            adapter.save(obj, staged)
            if custom_objects:
                _pickle_custom_objects(custom_objects, staged)
        checkpoint("files_written")
        with open(os.path.join(staged, INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(info.to_dict(), f, indent=1, sort_keys=True)
        write_manifest(staged, build_manifest(staged, str(tag)))
        fsync_tree(staged)
        checkpoint("manifest_written")
        with store.name_lock(name):
            content = store.commit(staged, tag)
    return Model(tag, content, info)
