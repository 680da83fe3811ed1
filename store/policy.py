"""What the store enforces on load and import: integrity, signatures, archive limits.

One frozen object, read from ``RUNNERFLEET_*`` env vars in :func:`policy_from_env` (through
the shared settings loader), passed down explicitly by callers that have their own settings
(the worker). Defaults are the safe choice: integrity checked, archives capped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from protos.errors import InvalidArgument
from protos.settings_loader import ENV_PREFIX, load_values, parse_bool, process_environ

__all__ = ["TrustPolicy", "policy_from_env", "parse_bool", "parse_key_paths", "ENV_PREFIX"]


@dataclasses.dataclass(frozen=True)
class TrustPolicy:
    """How much the store checks.

    ``verify_integrity``: hash every file against the manifest before anything is unpickled.
    ``require_signature``: a version (or archive) must carry an ed25519 signature over its
    manifest by one of ``trusted_keys`` (paths of PEM public keys).
    ``max_extract_ratio``/``max_extract_bytes``: an import may write at most
    ``archive size * ratio`` bytes (a plain tar cannot hold more than its own size, so 1.0 is
    exact for honest archives), or ``max_extract_bytes`` when set.
    ``min_free_bytes``: free space that must remain on the store's filesystem after an import.
    ``retired_grace_s``: how long a replaced or deleted version's files stay readable for
    readers that resolved it before the swap.
    """

    verify_integrity: bool = True
    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()
    max_extract_ratio: float = 1.0
    max_extract_bytes: int | None = None
    min_free_bytes: int = 64 * 1024 * 1024
    retired_grace_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_extract_ratio <= 0:
            raise InvalidArgument(f"max_extract_ratio must be > 0, got {self.max_extract_ratio}")
        if self.max_extract_bytes is not None and self.max_extract_bytes < 0:
            raise InvalidArgument(f"max_extract_bytes must be >= 0, got {self.max_extract_bytes}")
        if self.require_signature and not self.trusted_keys:
            raise InvalidArgument("require_signature needs at least one trusted public key")
        if self.retired_grace_s < 0:
            raise InvalidArgument(f"retired_grace_s must be >= 0, got {self.retired_grace_s}")

    def extract_cap_bytes(self, archive_bytes: int) -> int:
        """The most bytes an import of an archive of ``archive_bytes`` may write."""
        if self.max_extract_bytes is not None:
            return self.max_extract_bytes
        return int(archive_bytes * self.max_extract_ratio)


def parse_key_paths(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"a.pub,b.pub"`` (or ``os.pathsep``-separated) -> ``("a.pub", "b.pub")``."""
    if value is None:
        return ()
    parts = value.replace(os.pathsep, ",").split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip() for p in parts if p.strip())


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "trusted_keys": parse_key_paths,
    "max_extract_bytes": int,
}


def policy_from_env(environ: Mapping[str, str] | None = None) -> TrustPolicy:
    """The policy from ``RUNNERFLEET_VERIFY_INTEGRITY``, ``_TRUSTED_KEYS`` etc., else defaults.

    Parsed by the one settings loader (``protos.settings_loader``): the same boolean rule and
    env prefix as every process's settings.
    """
    env = process_environ() if environ is None else environ
    return TrustPolicy(**load_values(TrustPolicy, {}, env, _PARSERS))
