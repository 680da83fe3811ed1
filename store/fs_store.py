"""The model store on a filesystem: `models/<name>/<version>` links, a `latest` pointer per name.

A version's files live in a content folder `models/<name>/.content/<version>-<id>/`, and
`models/<name>/<version>` is a relative symlink to it. A save or import moves a complete
staging dir into `.content/`, then makes the link with one rename, so readers never see half a
model; a forced replace renames a new link over the old one, so a reader resolves either the
old content or the new, whole, never neither. Readers resolve the link once (Model.path is the
content folder) and keep reading the content they resolved: a replaced or deleted content
folder stays on disk for ``retired_grace_s`` before it is collected. Renames and the `latest`
pointer change under a per-name filelock; `latest` is replaced atomically (temp file, then
os.replace). Readers take no lock: a pointer that names a missing version falls back to a scan.
Stores written before links (version folders in place) are still read, and replaced in one
step with renameat2(RENAME_EXCHANGE).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping

import filelock

from protos.errors import NotFound, Unavailable
from protos.settings_loader import store_root
from store.model import INFO_FILE, Model, ModelInfo
from store.policy import policy_from_env
from store.staging import cleanup_dead, exchange_paths, staging_dir
from store.tag import Tag, resolve_version, validate_part

__all__ = ["FileStore", "default_root", "default_store", "CHECKPOINT_HOOK", "checkpoint"]

_LATEST_FILE = "latest"
CONTENT_DIR = ".content"

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

    def __init__(
        self, root: str, lock_timeout_s: float = 120.0, retired_grace_s: float | None = None
    ) -> None:
        self.root = os.path.abspath(root)
        self.models_dir = os.path.join(self.root, "models")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.locks_dir = os.path.join(self.root, "locks")
        self.lock_timeout_s = lock_timeout_s
        self.retired_grace_s = (
            policy_from_env().retired_grace_s if retired_grace_s is None else retired_grace_s
        )

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

    def commit(self, staged: str, tag: Tag, *, replace: bool = False) -> str:
        """Make a complete staged dir visible as ``tag``; return its content folder.

        The caller holds ``name_lock``. With ``replace`` an existing version is swapped for the
        new one in one rename (readers see old or new, whole); without it, it must not exist.
        """
        name_dir = os.path.join(self.models_dir, tag.name)
        version = str(tag.version)
        content_rel = f"{CONTENT_DIR}/{version}-{uuid.uuid4().hex[:12]}"
        content = os.path.join(name_dir, content_rel)
        os.makedirs(os.path.dirname(content), exist_ok=True)
        checkpoint("before_rename")
        # A kill from here to the link's rename leaves a content folder no link names; the
        # next commit or delete of this name collects it once older than the grace period.
        os.rename(staged, content)
        target = os.path.join(name_dir, version)
        link = os.path.join(name_dir, f".link-{uuid.uuid4().hex}")
        os.symlink(content_rel, link)
        old = self._content_of(name_dir, version) if replace else None
        if old is not None and not os.path.islink(target):
            exchange_paths(link, target)  # a pre-link store: swap the folder out in one step
            old = os.path.join(name_dir, f"{CONTENT_DIR}/{version}-{uuid.uuid4().hex[:12]}")
            os.rename(link, old)
        else:
            os.rename(link, target)  # atomically replaces an old link, never a folder
        checkpoint("after_rename")
        if old is not None:
            _retire(old)
        self._collect(tag.name)
        self._update_latest(tag.name)
        return content

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
            name_dir = os.path.join(self.models_dir, parsed.name)
            for version in doomed:
                path = os.path.join(name_dir, version)
                if os.path.islink(path):
                    content = self._content_of(name_dir, version)
                    os.unlink(path)
                    if content is not None:
                        _retire(content)
                else:
                    self._remove_dir(path)
                checkpoint("after_delete_version")
            self._collect(parsed.name)
            self._update_latest(parsed.name)
        return [Tag(parsed.name, v) for v in doomed]

    def _remove_dir(self, path: str) -> None:
        """Make ``path`` vanish at once (rename into staging), then remove it."""
        with self.staging("trash") as trash:
            os.rename(path, os.path.join(trash, "dir"))

    def _collect(self, name: str) -> None:
        """Remove content folders no link names, retired more than the grace period ago.

        Caller holds ``name_lock``, so no commit of this name is between its two renames.
        """
        name_dir = os.path.join(self.models_dir, name)
        content_root = os.path.join(name_dir, CONTENT_DIR)
        try:
            folders = os.listdir(content_root)
        except FileNotFoundError:
            return
        live = set()
        for entry in os.listdir(name_dir):
            path = os.path.join(name_dir, entry)
            if entry.startswith(".link-"):  # a commit killed before its rename
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            elif (target := _readlink(path)) is not None:
                live.add(os.path.basename(target))
        cutoff = time.time() - self.retired_grace_s
        for folder in folders:
            path = os.path.join(content_root, folder)
            if folder in live:
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_mtime <= cutoff:
                    self._remove_dir(path)
        with contextlib.suppress(OSError):
            os.rmdir(content_root)  # only when empty

    def _content_of(self, name_dir: str, version: str) -> str | None:
        """The folder holding ``version``'s files (its link's target, or a pre-link folder)."""
        path = os.path.join(name_dir, version)
        target = _readlink(path)
        if target is not None:
            return os.path.normpath(os.path.join(name_dir, target))
        return path if os.path.isdir(path) else None

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
            if e != _LATEST_FILE
            and not e.startswith(".")
            and os.path.isfile(os.path.join(name_dir, e, INFO_FILE))
        ]

    def _resolved(self, name: str, version: str) -> tuple[str, ModelInfo] | None:
        """(content folder, info) of ``name:version`` resolved once, or None if absent."""
        content = self._content_of(os.path.join(self.models_dir, name), version)
        if content is None:
            return None
        try:
            return content, ModelInfo.read(content)
        except NotFound:
            return None  # deleted while we looked

    def _info(self, name: str, version: str) -> ModelInfo | None:
        resolved = self._resolved(name, version)
        return None if resolved is None else resolved[1]

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
            resolved = self._resolved(parsed.name, version)
            if resolved is not None:
                return Model(Tag(parsed.name, version), resolved[0], resolved[1])
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
                resolved = self._resolved(model_name, version)
                if resolved is None:
                    continue
                path, info = resolved
                if labels and any(info.labels.get(k) != v for k, v in labels.items()):
                    continue
                found.append(Model(Tag(model_name, version), path, info))
        found.sort(key=lambda m: (m.tag.name, m.info.creation_time, m.tag.version or ""))
        return found


def _readlink(path: str) -> str | None:
    """The target of symlink ``path``, or None when it is absent or not a link."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def _retire(content: str) -> None:
    """Stamp a content folder no link names any more: collected once the grace period passed."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(content)
