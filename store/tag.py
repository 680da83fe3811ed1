"""Model tags: `name:version`, validated, with `latest` and unique-prefix resolution."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from protos.errors import InvalidArgument, NotFound

__all__ = [
    "Tag",
    "LATEST",
    "MAX_PART_CHARS",
    "validate_part",
    "lower_part",
    "new_version",
    "resolve_version",
]

_log = logging.getLogger(__name__)

_PART_RE = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
MAX_PART_CHARS = 63
LATEST = "latest"
_VERSION_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def validate_part(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid tag name/version, else raise InvalidArgument."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"model {what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_PART_CHARS:
        raise InvalidArgument(
            f"model {what} {value!r} is {len(value)} characters; at most {MAX_PART_CHARS} allowed"
        )
    if not _PART_RE.match(value):
        raise InvalidArgument(
            f"invalid model {what} {value!r}: use lowercase letters, digits, '-', '.', '_' "
            "(starting and ending with a letter or digit)"
        )
    return value


def lower_part(value: object, what: str = "name") -> object:
    """``value`` lower-cased, with a warning when that changed it (as BentoML does)."""
    if isinstance(value, str) and value != value.lower():
        _log.warning("model %s %r converted to lowercase: %r", what, value, value.lower())
        return value.lower()
    return value


@dataclass(frozen=True, order=True)
class Tag:
    """A model tag; ``version`` None or "latest" means the newest version by creation time."""

    name: str
    version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", lower_part(self.name, "name"))
        validate_part(self.name, "name")
        if self.version is not None:
            object.__setattr__(self, "version", lower_part(self.version, "version"))
            validate_part(self.version, "version")

    @classmethod
    def from_str(cls, text: str) -> Tag:
        """Parse ``name`` or ``name:version``."""
        if not isinstance(text, str):
            raise InvalidArgument(f"model tag must be a string, got {type(text).__name__}")
        name, sep, version = text.strip().partition(":")
        if sep and not version:
            raise InvalidArgument(f"invalid model tag {text!r}: empty version after ':'")
        if ":" in version:
            raise InvalidArgument(f"invalid model tag {text!r}: more than one ':'")
        return cls(name, version or None)

    @classmethod
    def from_taglike(cls, value: str | Tag) -> Tag:
        """Accept a Tag or its string form."""
        return value if isinstance(value, Tag) else cls.from_str(value)

    @property
    def is_latest(self) -> bool:
        return self.version is None or self.version == LATEST

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


def new_version() -> str:
    """A fresh random version (16 lowercase base32 characters, like BentoML's)."""
    return "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(16))


def resolve_version(tag: Tag, versions: Iterable[str]) -> str:
    """The one stored version that ``tag.version`` names exactly or as a unique prefix."""
    assert tag.version is not None and not tag.is_latest
    existing = set(versions)
    if tag.version in existing:
        return tag.version
    matches = sorted(v for v in existing if v.startswith(tag.version))
    if not matches:
        raise NotFound(f"model {tag} not found")
    if len(matches) > 1:
        shown = ", ".join(matches[:5])
        raise InvalidArgument(f"model version prefix {tag} is ambiguous: matches {shown}")
    return matches[0]
