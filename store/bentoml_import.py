"""Convert a BentoML 1.x ``.bentomodel`` archive (sklearn, pytorch) into a RunnerFleet archive.

A ``.bentomodel`` is a tar (compressed or not) holding ``model.yaml`` and the framework's file
(``saved_model.pkl`` written by joblib for sklearn, ``saved_model.pt`` written by
``torch.save(..., pickle_module=cloudpickle)`` for pytorch), plus ``custom_objects.pkl``
(cloudpickle, the same name here) when there are custom objects. Those files are what our
adapters read, so the
conversion only renames them, turns ``model.yaml`` into ``info.json`` and writes a manifest;
the result then goes through the store's ordinary verified import. Nothing is unpickled here:
importing never runs the archive's code (loading the model later does, as with any pickle).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

from protos.errors import InvalidArgument
from store.manifest import build_manifest, write_manifest
from store.metadata import normalize_labels, normalize_metadata
from store.model import INFO_FILE, MANIFEST_FILE, ModelInfo, ModelSignature
from store.tag import Tag

__all__ = ["BENTOMODEL_SUFFIX", "is_bentomodel", "as_rfmodel", "convert"]

BENTOMODEL_SUFFIX = ".bentomodel"
_YAML = "model.yaml"
# BentoML module -> (our module, BentoML's model file, our model file, framework name)
_FRAMEWORKS = {
    "bentoml.sklearn": ("sklearn", "saved_model.pkl", "model.joblib", "sklearn"),
    "bentoml.pytorch": ("pytorch", "saved_model.pt", "model.pt", "torch"),
}
_PACKAGES = {"sklearn": ("scikit-learn", "sklearn"), "torch": ("torch",)}


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular files by normalized path; links, devices and escaping paths are refused."""
    files: dict[str, tarfile.TarInfo] = {}
    for member in tar:
        if member.isdir():
            continue
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if member.name.startswith("/") or ".." in parts or "\\" in member.name or not parts:
            raise InvalidArgument(f".bentomodel member {member.name!r} escapes its folder")
        name = "/".join(parts)
        if not member.isfile():
            raise InvalidArgument(f".bentomodel member {member.name!r} is not a regular file")
        files[name] = member
    return files


def _root(files: dict[str, tarfile.TarInfo]) -> str:
    """The folder inside the archive that holds model.yaml ("" = the archive's root)."""
    roots = [posixpath.dirname(n) for n in files if posixpath.basename(n) == _YAML]
    if len(roots) != 1:
        raise InvalidArgument(
            f"not a BentoML .bentomodel archive: expected one {_YAML}, found {len(roots)}"
        )
    return roots[0]


def is_bentomodel(path: str) -> bool:
    """True when ``path`` is a tar archive with a model.yaml and no RunnerFleet manifest."""
    if path.endswith(BENTOMODEL_SUFFIX):
        return True
    try:
        with tarfile.open(path, "r:*") as tar:
            names = {posixpath.basename(m.name) for m in tar}
    except (tarfile.TarError, OSError, EOFError):
        return False
    return _YAML in names and MANIFEST_FILE not in names


def _creation_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidArgument(f"{_YAML}: creation_time {value!r} is not a date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _signatures(raw: Any) -> dict[str, ModelSignature]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidArgument(f"{_YAML}: signatures must be a non-empty mapping")
    out = {}
    for method, sig in raw.items():
        sig = sig or {}
        dim = sig.get("batch_dim", 0)
        pair = (dim, dim) if isinstance(dim, int) else tuple(dim)
        if len(pair) != 2:
            raise InvalidArgument(f"{_YAML}: signature {method!r} has batch_dim {dim!r}")
        out[str(method)] = ModelSignature(
            batchable=bool(sig.get("batchable", False)), batch_dim=(int(pair[0]), int(pair[1]))
        )
    return out


def _info(meta: dict[str, Any], module: str, framework: str) -> ModelInfo:
    context = meta.get("context") or {}
    versions = context.get("framework_versions") or {}
    framework_version = next(
        (str(versions[p]) for p in _PACKAGES.get(framework, ()) if p in versions), ""
    )
    tag = Tag(str(meta.get("name", "")), str(meta.get("version", "")))  # validates both
    return ModelInfo(
        name=tag.name,
        version=str(tag.version),
        module=module,
        labels=normalize_labels(meta.get("labels") or {}),
        metadata=normalize_metadata(meta.get("metadata") or {}),
        creation_time=_creation_time(meta.get("creation_time")),
        signatures=_signatures(meta.get("signatures")),
        context={
            "framework": framework,
            "framework_version": framework_version,
            "python_version": str(context.get("python_version", "")),
            "bentoml_version": str(context.get("bentoml_version", "")),
            "imported_from": "bentoml",
        },
        options=normalize_metadata(meta.get("options") or {}),
    )


def convert(path: str, out_dir: str) -> str:
    """Write the RunnerFleet ``.rfmodel`` archive for the ``.bentomodel`` at ``path``."""
    import yaml

    version_dir = os.path.join(out_dir, "version")
    os.makedirs(version_dir)
    try:
        with tarfile.open(path, "r:*") as tar:
            files = _members(tar)
            root = _root(files)
            for name, member in files.items():
                rel = posixpath.relpath(name, root) if root else name
                if rel.startswith(".."):
                    continue  # outside the model's folder: not part of the model
                target = os.path.join(version_dir, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"{path} is not a readable .bentomodel archive: {exc}") from exc
    with open(os.path.join(version_dir, _YAML), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    if not isinstance(meta, dict):
        raise InvalidArgument(f"{_YAML} in {path} is not a mapping")
    bento_module = str(meta.get("module", ""))
    if bento_module not in _FRAMEWORKS:
        raise InvalidArgument(
            f"{path}: models saved with {bento_module or 'an unknown module'} cannot be imported; "
            f"supported: {sorted(_FRAMEWORKS)}"
        )
    module, theirs, ours, framework = _FRAMEWORKS[bento_module]
    if not os.path.isfile(os.path.join(version_dir, theirs)):
        raise InvalidArgument(f"{path}: {bento_module} model without its {theirs}")
    for reserved in (INFO_FILE, MANIFEST_FILE, ours):
        if os.path.exists(os.path.join(version_dir, reserved)):
            raise InvalidArgument(f"{path}: unexpected file {reserved} in a .bentomodel")
    os.replace(os.path.join(version_dir, theirs), os.path.join(version_dir, ours))
    info = _info(meta, module, framework)
    with open(os.path.join(version_dir, INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info.to_dict(), f, indent=1, sort_keys=True)
    write_manifest(version_dir, build_manifest(version_dir, str(info.tag)))
    archive = os.path.join(out_dir, f"{info.name}-{info.version}.rfmodel")
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(version_dir)):
            tar.add(os.path.join(version_dir, entry), arcname=entry)
    return archive


@contextlib.contextmanager
def as_rfmodel(path: str) -> Iterator[str]:
    """``path`` itself, or (for a .bentomodel) a converted temporary ``.rfmodel`` archive."""
    if not os.path.isfile(path) or not is_bentomodel(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rf-bentomodel-") as tmp:
        yield convert(path, tmp)
