"""Export a version to one `.rfmodel` file (a plain tar with the manifest first) and import it.

Import never trusts the archive: only regular files with relative, non-escaping paths are
read; each is streamed into a private staging dir while hashed; every sha256 and the file set
must match the manifest before anything becomes visible in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from protos.errors import AlreadyExists, Internal, InvalidArgument, NotFound
from store.frameworks import get_adapter
from store.fs_store import FileStore, checkpoint, default_store
from store.manifest import copy_hashing, read_manifest
from store.model import INFO_FILE, MANIFEST_FILE, Model, ModelInfo
from store.staging import fsync_tree
from store.tag import Tag

__all__ = ["export_model", "import_model", "ImportResult", "archive_size_bytes"]

ARCHIVE_SUFFIX = ".rfmodel"
Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class ImportResult:
    """The imported model and what happened: "created", "unchanged" or "replaced"."""

    model: Model
    outcome: str

    @property
    def message(self) -> str:
        if self.outcome == "unchanged":
            return f"model {self.model.tag} is already in the store, identical: nothing imported"
        return f"model {self.model.tag} {self.outcome}"


def archive_size_bytes(model: Model) -> int:
    """Bytes of payload an export of ``model`` copies (for progress bars)."""
    manifest = read_manifest(model.path)
    return sum(int(e.get("size_bytes", 0)) for e in manifest["files"].values())


def export_model(
    tag: str | Tag, path: str, *, store: FileStore | None = None, progress: Progress = None
) -> str:
    """Write ``tag`` to the archive ``path`` (atomically); return the path written."""
    store = store or default_store()
    model = store.get(tag)
    manifest = read_manifest(model.path)
    if os.path.isdir(path):
        path = os.path.join(path, f"{model.tag.name}-{model.tag.version}{ARCHIVE_SUFFIX}")
    temp = f"{path}.{os.getpid()}.partial"
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(os.path.join(model.path, MANIFEST_FILE), arcname=MANIFEST_FILE)
            for rel, entry in sorted(manifest["files"].items()):
                _add_checked(tar, model, rel, entry["sha256"], progress)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return path


class _HashingReader:
    """A file reader that hashes (and reports) what tarfile copies out of it."""

    def __init__(self, f: BinaryIO, progress: Progress) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.f.read(size)
        self.digest.update(chunk)
        if self.progress is not None:
            self.progress(len(chunk))
        return chunk


def _add_checked(
    tar: tarfile.TarFile, model: Model, rel: str, sha256: str, progress: Progress
) -> None:
    """Add one file, re-hashing it on the way so a corrupted store is never exported."""
    src = model.path_of(rel)
    info = tar.gettarinfo(src, arcname=rel)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(src, "rb") as f:
        reader = _HashingReader(f, progress)
        tar.addfile(info, reader)
    if reader.digest.hexdigest() != sha256:
        raise Internal(f"stored file {rel} of {model.tag} does not match its manifest sha256")


def _safe_member_path(name: str) -> str:
    """The normalized relative path of a member, or InvalidArgument if it could escape."""
    if not name or "\x00" in name or "\\" in name:
        raise InvalidArgument(f"archive member {name!r} has an invalid name")
    if name.startswith("/") or posixpath.isabs(name):
        raise InvalidArgument(f"archive member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"archive member {name!r} escapes its folder ('..'); refused")
    if not parts:
        raise InvalidArgument(f"archive member {name!r} has an empty path")
    return "/".join(parts)


def _extract(archive: str, staged: str, progress: Progress) -> dict[str, str]:
    """Stream every member into ``staged``; return {relative path: sha256}."""
    hashes: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                rel = _safe_member_path(member.name)
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    raise InvalidArgument(
                        f"archive member {member.name!r} is a link; links are refused"
                    )
                if not member.isfile():
                    raise InvalidArgument(f"archive member {member.name!r} is not a regular file")
                if rel in hashes:
                    raise InvalidArgument(f"archive member {rel!r} appears twice")
                target = os.path.join(staged, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with open(target, "xb") as dst:
                    sha, size_bytes = copy_hashing(src, dst, progress)
                if size_bytes != member.size:
                    raise InvalidArgument(f"archive is truncated: member {rel!r} is incomplete")
                hashes[rel] = sha
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(
            f"{archive} is not a valid {ARCHIVE_SUFFIX} archive or is truncated: {exc}"
        ) from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.exists(archive):
            raise NotFound(f"archive {archive} does not exist") from exc
        raise InvalidArgument(f"cannot read archive {archive}: {exc}") from exc
    return hashes


def _verify(staged: str, hashes: dict[str, str]) -> ModelInfo:
    """Check the file set and every sha256 against the manifest; return the model info."""
    if MANIFEST_FILE not in hashes:
        raise InvalidArgument(f"archive has no {MANIFEST_FILE}; not a {ARCHIVE_SUFFIX} archive")
    manifest = read_manifest(staged)
    expected = {rel: entry["sha256"] for rel, entry in manifest["files"].items()}
    actual = {rel: sha for rel, sha in hashes.items() if rel != MANIFEST_FILE}
    missing = sorted(set(expected) - set(actual))
    if missing:
        raise InvalidArgument(f"archive is truncated or incomplete: missing {missing}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise InvalidArgument(f"archive holds files not in its manifest: {extra}")
    for rel in sorted(expected):
        if expected[rel] != actual[rel]:
            raise InvalidArgument(
                f"archive file {rel!r} fails its sha256 check: tampered or corrupt"
            )
    if INFO_FILE not in actual:
        raise InvalidArgument(f"archive has no {INFO_FILE}; not a {ARCHIVE_SUFFIX} archive")
    info = ModelInfo.read(staged)
    get_adapter(info.module)  # refuse frameworks this installation cannot load
    tag = Tag(info.name, info.version)  # validates both, so the target path cannot escape
    if manifest.get("tag") != str(tag):
        raise InvalidArgument(
            f"manifest tag {manifest.get('tag')!r} differs from {INFO_FILE} {tag}"
        )
    return info


def _same_content(store: FileStore, tag: Tag, staged: str) -> bool:
    existing = read_manifest(os.path.join(store.models_dir, tag.name, str(tag.version)))
    return bool(existing["files"] == read_manifest(staged)["files"])


def import_model(
    path: str, *, force: bool = False, store: FileStore | None = None, progress: Progress = None
) -> ImportResult:
    """Import an archive; identical re-import is a no-op; a different one needs ``force``."""
    store = store or default_store()
    if not os.path.isfile(path):
        raise NotFound(f"archive {path} does not exist")
    with store.staging("import") as staged:
        hashes = _extract(path, staged, progress)
        info = _verify(staged, hashes)
        fsync_tree(staged)
        tag = info.tag
        final = os.path.join(store.models_dir, tag.name, info.version)
        checkpoint("import_verified")
        with store.name_lock(tag.name):
            exists = store.exists(tag)
            if exists and _same_content(store, tag, staged):
                return ImportResult(Model(tag, final, ModelInfo.read(final)), "unchanged")
            if exists and not force:
                raise AlreadyExists(
                    f"model {tag} already exists with different content; "
                    "import with force=True (--force) to replace it"
                )
            store.commit(staged, tag, replace=exists)
    return ImportResult(Model(tag, final, info), "replaced" if exists else "created")
