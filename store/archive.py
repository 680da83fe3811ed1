"""Export a version to one `.rfmodel` file (a plain tar with the manifest first) and import it.

Import never trusts the archive: only regular files and directories with relative,
non-escaping paths are accepted (sparse members, links, devices, FIFOs are refused from their
header, before any byte is written); each file is streamed into a private staging dir while
hashed, and the bytes written are capped (archive size x ``max_extract_ratio``) and checked
against free space; every sha256 and the file set must match the manifest, and under
``require_signature`` the manifest must be signed by a trusted key, before anything becomes
visible in the store. A refused import leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, BinaryIO

from protos.errors import AlreadyExists, Internal, InvalidArgument, NotFound, ResourceExhausted
from store.frameworks import get_adapter
from store.fs_store import FileStore, checkpoint, default_store
from store.integrity import check_signature
from store.manifest import CHUNK_BYTES, read_manifest
from store.model import INFO_FILE, MANIFEST_FILE, SIGNATURE_FILE, Model, ModelInfo
from store.policy import TrustPolicy, policy_from_env
from store.signing import load_private_key, sign_manifest_bytes
from store.staging import fsync_tree
from store.tag import Tag

__all__ = [
    "export_model",
    "import_model",
    "ImportResult",
    "archive_size_bytes",
    "check_free_space",
    "with_signature_required",
]

ARCHIVE_SUFFIX = ".rfmodel"
Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class ImportResult:
    """The imported model and what happened: "created", "unchanged", "replaced" or "signed"

    ("signed": the same files were stored unsigned; the archive's signature was added).
    """

    model: Model
    outcome: str

    @property
    def message(self) -> str:
        if self.outcome == "unchanged":
            return f"model {self.model.tag} is already in the store, identical: nothing imported"
        if self.outcome == "signed":
            return f"model {self.model.tag} is already in the store, identical: signature added"
        return f"model {self.model.tag} {self.outcome}"


def archive_size_bytes(model: Model) -> int:
    """Bytes of payload an export of ``model`` copies (for progress bars)."""
    manifest = read_manifest(model.path)
    return sum(int(e.get("size_bytes", 0)) for e in manifest["files"].values())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def export_model(
    tag: str | Tag,
    path: str,
    *,
    store: FileStore | None = None,
    progress: Progress = None,
    sign_key: str | None = None,
) -> str:
    """Write ``tag`` to the archive ``path`` (atomically); return the path written.

    With ``sign_key`` (an ed25519 PEM private key file) the archive carries a signature over
    the manifest; without it, a signature the stored version already has travels along.
    """
    store = store or default_store()
    model = store.get(tag)
    private_key = load_private_key(sign_key) if sign_key is not None else None
    with open(os.path.join(model.path, MANIFEST_FILE), "rb") as f:
        manifest_bytes = f.read()
    manifest = read_manifest(model.path)
    if private_key is not None:
        signature: bytes | None = sign_manifest_bytes(manifest_bytes, private_key)
    else:
        try:
            with open(os.path.join(model.path, SIGNATURE_FILE), "rb") as f:
                signature = f.read()
        except FileNotFoundError:
            signature = None
    if os.path.isdir(path):
        path = os.path.join(path, f"{model.tag.name}-{model.tag.version}{ARCHIVE_SUFFIX}")
    temp = f"{path}.{os.getpid()}.partial"
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST_FILE, manifest_bytes)
            if signature is not None:
                _add_bytes(tar, SIGNATURE_FILE, signature)
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


class _Budget:
    """Bytes an import may still write; refuses a member (declared or streamed) beyond it."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.left_bytes = cap_bytes

    def check_declared(self, size_bytes: int, rel: str) -> None:
        """Refuse a member whose header declares more than is left (nothing charged)."""
        if size_bytes > self.left_bytes:
            raise self._refusal(rel)

    def take(self, size_bytes: int, rel: str) -> None:
        """Charge bytes about to be written; refuse once they would pass the cap."""
        if size_bytes > self.left_bytes:
            raise self._refusal(rel)
        self.left_bytes -= size_bytes

    def _refusal(self, rel: str) -> InvalidArgument:
        return InvalidArgument(
            f"archive member {rel!r} would expand the import beyond its limit of "
            f"{self.cap_bytes} bytes (max_extract_ratio / max_extract_bytes); refused"
        )


def _check_member_type(member: tarfile.TarInfo) -> None:
    """Only plain regular files and directories; refused from the header, before any write."""
    if member.issparse() or any(k.startswith("GNU.sparse") for k in member.pax_headers):
        raise InvalidArgument(f"archive member {member.name!r} is a sparse file; refused")
    if member.issym() or member.islnk():
        raise InvalidArgument(f"archive member {member.name!r} is a link; links are refused")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        raise InvalidArgument(
            f"archive member {member.name!r} is not a regular file or directory "
            f"(tar type {member.type!r}); refused"
        )


def _copy_capped(
    src: IO[bytes], dst: BinaryIO, budget: _Budget, rel: str, progress: Progress
) -> tuple[str, int]:
    """Copy one member while hashing, charging every chunk to ``budget``."""
    digest = hashlib.sha256()
    size_bytes = 0
    for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
        budget.take(len(chunk), rel)
        digest.update(chunk)
        dst.write(chunk)
        size_bytes += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return digest.hexdigest(), size_bytes


def check_free_space(directory: str, need_bytes: int, policy: TrustPolicy) -> None:
    """ResourceExhausted unless ``need_bytes`` fit with ``min_free_bytes`` to spare."""
    stat = os.statvfs(directory)
    free_bytes = stat.f_bavail * stat.f_frsize
    if free_bytes - need_bytes < policy.min_free_bytes:
        raise ResourceExhausted(
            f"not enough free space in {directory}: import needs up to {need_bytes} bytes, "
            f"{free_bytes} free, {policy.min_free_bytes} must stay free"
        )


def _extract(archive: str, staged: str, progress: Progress, policy: TrustPolicy) -> dict[str, str]:
    """Stream every member into ``staged`` within the limits; return {relative path: sha256}."""
    hashes: dict[str, str] = {}
    archive_bytes = os.path.getsize(archive)
    budget = _Budget(policy.extract_cap_bytes(archive_bytes))
    check_free_space(staged, min(budget.cap_bytes, archive_bytes), policy)
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                rel = _safe_member_path(member.name)
                _check_member_type(member)
                if member.isdir():
                    continue
                if rel in hashes:
                    raise InvalidArgument(f"archive member {rel!r} appears twice")
                budget.check_declared(member.size, rel)  # before a byte is written
                target = os.path.join(staged, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with open(target, "xb") as dst:
                    sha, size_bytes = _copy_capped(src, dst, budget, rel, progress)
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
    actual = {rel: sha for rel, sha in hashes.items() if rel not in (MANIFEST_FILE, SIGNATURE_FILE)}
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


def _read_optional(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _compare(existing: Model, staged: str) -> str:
    """ "same", "adds_signature" (same files, the archive brings a new signature) or "differs"."""
    if read_manifest(existing.path)["files"] != read_manifest(staged)["files"]:
        return "differs"
    new_sig = _read_optional(os.path.join(staged, SIGNATURE_FILE))
    if new_sig is None or new_sig == _read_optional(existing.path_of(SIGNATURE_FILE)):
        return "same"
    return "adds_signature"


def import_model(
    path: str,
    *,
    force: bool = False,
    store: FileStore | None = None,
    progress: Progress = None,
    policy: TrustPolicy | None = None,
) -> ImportResult:
    """Import an archive; identical re-import is a no-op; a different one needs ``force``.

    ``policy`` (default: from env) sets the extraction limits and whether a signature by a
    trusted key is required.
    """
    store = store or default_store()
    policy = policy if policy is not None else policy_from_env()
    if not os.path.isfile(path):
        raise NotFound(f"archive {path} does not exist")
    with store.staging("import") as staged:
        hashes = _extract(path, staged, progress, policy)
        info = _verify(staged, hashes)
        if policy.require_signature:
            check_signature(staged, policy, f"archive {os.path.basename(path)}")
        fsync_tree(staged)
        tag = info.tag
        checkpoint("import_verified")
        with store.name_lock(tag.name):
            exists = store.exists(tag)
            if exists:
                existing = store.get(tag)
                relation = _compare(existing, staged)
                if relation == "same":
                    return ImportResult(existing, "unchanged")
                if relation == "differs" and not force:
                    raise AlreadyExists(
                        f"model {tag} already exists with different content; "
                        "import with force=True (--force) to replace it"
                    )
                outcome = "signed" if relation == "adds_signature" else "replaced"
            else:
                outcome = "created"
            final = store.commit(staged, tag, replace=exists)
    return ImportResult(Model(tag, final, info), outcome)


def with_signature_required(policy: TrustPolicy, trusted_keys: tuple[str, ...]) -> TrustPolicy:
    """``policy`` that also requires a signature by one of ``trusted_keys`` (added to its own)."""
    keys = tuple(dict.fromkeys(policy.trusted_keys + trusted_keys))
    return dataclasses.replace(policy, require_signature=True, trusted_keys=keys)
