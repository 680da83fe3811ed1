"""System (POSIX) shared-memory regions a client registered, with bounds checks on every use.

Triton's system shared-memory extension: a client on the same host creates a POSIX shared
memory object (``shm_open(key)``, e.g. ``/input0``), registers ``(name, key, offset,
byte_size)``, then names the region in a tensor's parameters instead of sending its bytes.
This registry opens and maps each object once, **read-only** (inputs are read through that
mapping, so ``np.frombuffer`` over it is zero-copy and the model cannot write into client
memory); the object is opened read-write, and checked to be the same inode, only when an
output is first written into the region.

Safety: every use checks ``offset + byte_size`` against the registered extent *and* against
the object's current size (``fstat``), so a client that shrank its object gets an error, not
a read past the end. A region unregistered while a request uses it stays mapped until that
request lets go of it (arrays keep the mapping alive); new lookups answer NOT_FOUND at once.
Remaining risk, as in Triton: an object truncated *between* the check and the read can still
fault the process (SIGBUS); the server trusts same-host clients that far. Keys are single
path components under ``/dev/shm`` (no ``/``, ``..`` or symlinks), so a key cannot name
another file. Transport-neutral: raises ``protos.errors`` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import re
import stat
import threading
from typing import NamedTuple

from protos.errors import InvalidArgument, NotFound, Unimplemented

__all__ = [
    "RegionStatus",
    "ShmRegion",
    "SharedMemoryRegistry",
    "SHM_DIR",
    "shm_available",
    "enabled_registry",
]

SHM_DIR = "/dev/shm"  # where Linux's shm_open keeps its objects
_KEY = re.compile(r"^/?([A-Za-z0-9._-]{1,250})$")


def shm_available() -> bool:
    """Whether this host has POSIX shared memory where ``shm_open`` keeps it."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.R_OK | os.X_OK)


class RegionStatus(NamedTuple):
    """What SystemSharedMemoryStatus reports for one region."""

    name: str
    key: str
    offset: int
    byte_size: int


def _object_path(key: str) -> str:
    match = _KEY.match(key)
    if match is None or match.group(1) in (".", ".."):
        raise InvalidArgument(
            f"shared-memory key {key!r} is not a POSIX shared-memory name: use '/name' with "
            "letters, digits, '.', '_' or '-' (no other '/')"
        )
    return os.path.join(SHM_DIR, match.group(1))


@dataclasses.dataclass(eq=False)
class ShmRegion:
    """One registered region: its object's file descriptor and a read-only mapping."""

    name: str
    key: str
    offset: int
    byte_size: int
    _fd: int
    _readable: mmap.mmap
    _writable: mmap.mmap | None = None
    registered: bool = True

    @property
    def status(self) -> RegionStatus:
        return RegionStatus(self.name, self.key, self.offset, self.byte_size)

    def _check(self, offset: int, byte_size: int, what: str) -> int:
        """The absolute start of ``[offset, offset+byte_size)`` in the object, after checks."""
        if not self.registered:
            raise NotFound(
                f"{what}: shared-memory region {self.name!r} was unregistered while the "
                "request was using it"
            )
        if offset < 0 or byte_size < 0:
            raise InvalidArgument(f"{what}: negative shared-memory offset or byte size")
        if offset + byte_size > self.byte_size:
            raise InvalidArgument(
                f"{what}: {byte_size} bytes at offset {offset} run past the end of "
                f"shared-memory region {self.name!r} ({self.byte_size} bytes)"
            )
        start = self.offset + offset
        size_now = os.fstat(self._fd).st_size
        if start + byte_size > size_now:
            raise InvalidArgument(
                f"{what}: shared-memory object {self.key!r} is now {size_now} bytes, smaller "
                f"than region {self.name!r} (offset {self.offset}, {self.byte_size} bytes): "
                "it was truncated after registration"
            )
        return start

    def read(self, offset: int, byte_size: int, *, what: str = "tensor") -> memoryview:
        """A read-only, zero-copy view of ``byte_size`` bytes at ``offset`` in the region."""
        start = self._check(offset, byte_size, what)
        return memoryview(self._readable)[start : start + byte_size]

    def write(self, offset: int, data: bytes | memoryview, *, what: str = "tensor") -> None:
        """Copy ``data`` into the region at ``offset`` (maps the object writable on first use)."""
        start = self._check(offset, len(data), what)
        if self._writable is None:
            self._writable = self._map_writable(what)
        self._writable[start : start + len(data)] = data

    def _map_writable(self, what: str) -> mmap.mmap:
        """Open the same object read-write (checked by inode) and map it; only for outputs."""
        try:
            fd = os.open(_object_path(self.key), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidArgument(
                f"{what}: shared-memory region {self.name!r} cannot be written: {exc}"
            ) from None
        try:
            now, then = os.fstat(fd), os.fstat(self._fd)
            if (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino):
                raise InvalidArgument(
                    f"{what}: shared-memory object {self.key!r} was replaced after region "
                    f"{self.name!r} was registered; register it again"
                )
            return mmap.mmap(fd, self.offset + self.byte_size)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(
                f"{what}: shared-memory region {self.name!r} cannot be written: {exc}"
            ) from None
        finally:
            os.close(fd)  # the mapping keeps its own reference

    def close(self) -> None:
        """Mark unregistered; unmap now unless a request still holds a view (then GC does)."""
        self.registered = False
        for mapping in (self._readable, self._writable):
            if mapping is not None:
                # an array still reading it makes close() raise: it unmaps when released
                with contextlib.suppress(BufferError):
                    mapping.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _open(name: str, key: str, offset: int, byte_size: int) -> ShmRegion:
    path = _object_path(key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # read-only until an output
    except FileNotFoundError:
        raise NotFound(
            f"shared-memory object {key!r} does not exist on this host (client and server "
            "must share a host)"
        ) from None
    except OSError as exc:
        raise InvalidArgument(f"cannot open shared-memory object {key!r}: {exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"shared-memory object {key!r} is not a regular object")
        if offset + byte_size > info.st_size:
            raise InvalidArgument(
                f"shared-memory region {name!r}: offset {offset} + byte_size {byte_size} "
                f"exceeds the {info.st_size}-byte object {key!r}"
            )
        readable = mmap.mmap(fd, offset + byte_size, prot=mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        raise
    return ShmRegion(name, key, offset, byte_size, fd, readable)


class SharedMemoryRegistry:
    """The registered regions of one process, by name (thread-safe)."""

    def __init__(self) -> None:
        self._regions: dict[str, ShmRegion] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        """Map ``key`` and register it as ``name``; ALREADY_EXISTS-like errors say so."""
        if not name:
            raise InvalidArgument("shared-memory region name is empty")
        if byte_size <= 0:
            raise InvalidArgument(f"shared-memory region {name!r}: byte_size must be > 0")
        with self._lock:
            if name in self._regions:
                raise InvalidArgument(
                    f"shared-memory region {name!r} is already registered; unregister it first"
                )
        region = _open(name, key, offset, byte_size)
        with self._lock:
            if name in self._regions:  # lost a race with another register of that name
                region.close()
                raise InvalidArgument(f"shared-memory region {name!r} is already registered")
            self._regions[name] = region

    def unregister(self, name: str = "") -> None:
        """Drop one region (NotFound if unknown), or every region when ``name`` is empty."""
        with self._lock:
            if name:
                region = self._regions.pop(name, None)
                if region is None:
                    raise NotFound(f"shared-memory region {name!r} is not registered")
                regions = [region]
            else:
                regions = list(self._regions.values())
                self._regions.clear()
        for region in regions:
            region.close()

    def status(self, name: str = "") -> list[RegionStatus]:
        """Every region's status, or one region's (NotFound if unknown)."""
        with self._lock:
            if name:
                region = self._regions.get(name)
                if region is None:
                    raise NotFound(f"shared-memory region {name!r} is not registered")
                return [region.status]
            return [r.status for _, r in sorted(self._regions.items())]

    def get(self, name: str, *, what: str = "tensor") -> ShmRegion:
        """The region called ``name``; NotFound naming the tensor when it is not registered."""
        region = self._regions.get(name)
        if region is None:
            raise NotFound(f"{what}: shared-memory region {name!r} is not registered")
        return region

    def __len__(self) -> int:
        return len(self._regions)

    def close(self) -> None:
        """Unregister everything (process exit)."""
        self.unregister("")


def enabled_registry(shm: SharedMemoryRegistry | None, where: str) -> SharedMemoryRegistry:
    """``shm``, or UNIMPLEMENTED saying shared memory is off on this ``where`` (a front door)."""
    if shm is None:
        raise Unimplemented(f"system shared memory is not enabled on this {where}")
    return shm
