"""The per-version manifest: sha256 and size of every file, written last, checked on import
and before every load (its own signature, ``manifest.sig``, is the one file it does not list)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from protos.errors import Internal, InvalidArgument
from store.model import MANIFEST_FILE, SIGNATURE_FILE

__all__ = [
    "FORMAT",
    "build_manifest",
    "write_manifest",
    "read_manifest",
    "sha256_file",
    "copy_hashing",
    "CHUNK_BYTES",
]

FORMAT = "rfmodel/1"
CHUNK_BYTES = 1 << 20


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_hashing(
    src: Any, dst: Any, progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Copy file object ``src`` to ``dst``; return (sha256 hex, size in bytes)."""
    digest = hashlib.sha256()
    size_bytes = 0
    for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
        digest.update(chunk)
        dst.write(chunk)
        size_bytes += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return digest.hexdigest(), size_bytes


def build_manifest(directory: str, tag: str) -> dict[str, Any]:
    """Hash every regular file under ``directory`` (except the manifest itself)."""
    files: dict[str, dict[str, Any]] = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if rel in (MANIFEST_FILE, SIGNATURE_FILE):
                continue
            if os.path.islink(path) or not os.path.isfile(path):
                raise Internal(f"model directory holds a non-regular file: {rel}")
            files[rel] = {"sha256": sha256_file(path), "size_bytes": os.path.getsize(path)}
    return {"format": FORMAT, "tag": tag, "files": files}


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    path = os.path.join(directory, MANIFEST_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(directory: str) -> dict[str, Any]:
    """Load and sanity-check a manifest (raises InvalidArgument when malformed)."""
    path = os.path.join(directory, MANIFEST_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError as exc:
        raise InvalidArgument(f"no {MANIFEST_FILE} found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed {MANIFEST_FILE}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidArgument(f"{MANIFEST_FILE} is not an {FORMAT} manifest")
    if not isinstance(manifest.get("files"), dict):
        raise InvalidArgument(f"{MANIFEST_FILE} has no file list")
    for rel, entry in manifest["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise InvalidArgument(f"{MANIFEST_FILE} entry for {rel!r} has no sha256")
    return manifest
