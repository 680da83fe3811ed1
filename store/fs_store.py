"""The model store on a filesystem: `models/<name>/<version>/` dirs, a `latest` pointer per name.

A version becomes visible by one rename of a complete staging dir, so readers never see half a
model. Renames and the `latest` pointer change under a per-name filelock, and `latest` is
replaced atomically (write a temp file, then os.replace). Readers take no lock: a pointer that
names a missing version (a delete racing the read, a killed writer) falls back to a scan.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping

import filelock

from protos.errors import NotFound, Unavailable
from protos.settings_loader import store_root
from store.model import INFO_FILE, Model, ModelInfo
from store.staging import cleanup_dead, staging_dir
from store.tag import Tag, resolve_version, validate_part

__all__ = ["FileStore", "default_root", "default_store", "CHECKPOINT_HOOK", "checkpoint"]

_LATEST_FILE = "latest"

# Tests set this in a child process to pause or die at named points of a save/delete.
CHECKPOINT_HOOK: Callable[[str], None] | None = None


def checkpoint(point: str) -> None:
    """Call the test hook, if any, at a named point of a store operation."""
    if CHECKPOINT_HOOK is not None:
        CHECKPOINT_HOOK(point)


def default_root() -> str:
    """``$RUNNERFLEET_HOME``, else ``~/runnerfleet`` (resolved by ``protos.settings_loader``)."""
    return store_root()


def default_store() -> FileStore:
    """The store at :func:`default_root` (re-read on every call so tests can switch homes)."""
    return FileStore(default_root())


class FileStore:
    """Models in ``<root>/models``, staging in ``<root>/tmp``, locks in ``<root>/locks``."""

    def __init__(self, root: str, lock_timeout_s: float = 120.0) -> None:
        self.root = os.path.abspath(root)
        self.models_dir = os.path.join(self.root, "models")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.locks_dir = os.path.join(self.root, "locks")
        self.lock_timeout_s = lock_timeout_s

    # ---- writers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self, kind: str = "save") -> Iterator[str]:
        """A private staging dir on the store's filesystem (dead ones are cleaned first)."""
        cleanup_dead(self.tmp_dir)
        with staging_dir(self.tmp_dir, kind) as path:
            yield path

    @contextlib.contextmanager
    def name_lock(self, name: str) -> Iterator[None]:
        """Exclusive lock for changing versions or `latest` of one model name."""
        os.makedirs(self.locks_dir, exist_ok=True)
        lock = filelock.FileLock(os.path.join(self.locks_dir, f"{name}.lock"))
        try:
            lock.acquire(timeout=self.lock_timeout_s)
        except filelock.Timeout as exc:
            raise Unavailable(
                f"model store busy: lock for {name!r} not free after {self.lock_timeout_s}s"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def commit(self, staged: str, tag: Tag, *, replace: bool = False) -> None:
        """Make a complete staged dir visible as ``tag``; caller holds ``name_lock``."""
        name_dir = os.path.join(self.models_dir, tag.name)
        os.makedirs(name_dir, exist_ok=True)
        target = os.path.join(name_dir, str(tag.version))
        checkpoint("before_rename")
        if replace and os.path.isdir(target):
            self._remove_dir(target)
        os.rename(staged, target)
        checkpoint("after_rename")
        self._update_latest(tag.name)

    def delete(self, tag: str | Tag) -> list[Tag]:
        """Delete one version (``name:version``/``name:latest``) or every version (``name``)."""
        parsed = Tag.from_taglike(tag)
        with self.name_lock(parsed.name):
            if parsed.version is None:
                doomed = self.versions(parsed.name)
                if not doomed:
                    raise NotFound(f"model {parsed.name!r} not found in store {self.root}")
            else:
                doomed = [self._resolve_version(parsed)]
            for version in doomed:
                self._remove_dir(os.path.join(self.models_dir, parsed.name, version))
                checkpoint("after_delete_version")
            self._update_latest(parsed.name)
        return [Tag(parsed.name, v) for v in doomed]

    def _remove_dir(self, path: str) -> None:
        """Make ``path`` vanish at once (rename into staging), then remove it."""
        with self.staging("trash") as trash:
            os.rename(path, os.path.join(trash, "dir"))

    def _update_latest(self, name: str) -> None:
        """Point `latest` at the newest version, or remove the name when none is left."""
        name_dir = os.path.join(self.models_dir, name)
        pointer = os.path.join(name_dir, _LATEST_FILE)
        newest = self._newest(name)
        if newest is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pointer)
            with contextlib.suppress(OSError):
                os.rmdir(name_dir)
            return
        temp = f"{pointer}.{os.getpid()}.tmp"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(newest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, pointer)

    # ---- readers -------------------------------------------------------------------------

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.models_dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if os.path.isdir(os.path.join(self.models_dir, e)))

    def versions(self, name: str) -> list[str]:
        """Visible versions of ``name`` (any order)."""
        name_dir = os.path.join(self.models_dir, validate_part(name, "name"))
        try:
            entries = os.listdir(name_dir)
        except FileNotFoundError:
            return []
        return [
            e
            for e in entries
            if e != _LATEST_FILE and os.path.isfile(os.path.join(name_dir, e, INFO_FILE))
        ]

    def _info(self, name: str, version: str) -> ModelInfo | None:
        try:
            return ModelInfo.read(os.path.join(self.models_dir, name, version))
        except NotFound:
            return None  # deleted while we looked

    def _newest(self, name: str) -> str | None:
        infos = [i for v in self.versions(name) if (i := self._info(name, v)) is not None]
        if not infos:
            return None
        return max(infos, key=lambda i: (i.creation_time, i.version)).version

    def read_latest(self, name: str) -> str | None:
        """The version the `latest` pointer names, or None."""
        try:
            with open(os.path.join(self.models_dir, name, _LATEST_FILE), encoding="utf-8") as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def _resolve_version(self, tag: Tag) -> str:
        if tag.is_latest:
            pointed = self.read_latest(tag.name)
            if pointed and os.path.isfile(
                os.path.join(self.models_dir, tag.name, pointed, INFO_FILE)
            ):
                return pointed
            newest = self._newest(tag.name)
            if newest is None:
                raise NotFound(f"model {tag.name!r} not found in store {self.root}")
            return newest
        try:
            return resolve_version(tag, self.versions(tag.name))
        except NotFound as exc:
            raise NotFound(f"model {tag} not found in store {self.root}") from exc

    def get(self, tag: str | Tag) -> Model:
        """The model ``tag`` names (``latest``/no version = newest; unique prefixes work)."""
        parsed = Tag.from_taglike(tag)
        for _ in range(5):  # a concurrent delete may remove what we resolved; resolve again
            version = self._resolve_version(parsed)
            path = os.path.join(self.models_dir, parsed.name, version)
            info = self._info(parsed.name, version)
            if info is not None:
                return Model(Tag(parsed.name, version), path, info)
        raise NotFound(f"model {parsed} not found in store {self.root}")

    def exists(self, tag: Tag) -> bool:
        return tag.version is not None and os.path.isfile(
            os.path.join(self.models_dir, tag.name, tag.version, INFO_FILE)
        )

    def list(self, name: str | None = None, labels: Mapping[str, str] | None = None) -> list[Model]:
        """Models sorted by name then creation time, optionally filtered by name and labels."""
        names = [validate_part(name, "name")] if name is not None else self.names()
        found: list[Model] = []
        for model_name in names:
            for version in self.versions(model_name):
                info = self._info(model_name, version)
                if info is None:
                    continue
                if labels and any(info.labels.get(k) != v for k, v in labels.items()):
                    continue
                path = os.path.join(self.models_dir, model_name, version)
                found.append(Model(Tag(model_name, version), path, info))
        found.sort(key=lambda m: (m.tag.name, m.info.creation_time, m.tag.version or ""))
        return found
