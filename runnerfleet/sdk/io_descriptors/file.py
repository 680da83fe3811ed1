"""``File``: raw bytes as one BYTES tensor; the API function receives a file-like object."""

from __future__ import annotations

import io
import os
from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor

__all__ = ["File"]


class File(IODescriptor):
    """A file: in, a ``io.BytesIO`` (BentoML gives a file-like object); out, bytes or a file."""

    def __init__(self, kind: str = "binaryio", mime_type: str | None = None) -> None:
        if kind != "binaryio":
            raise InvalidArgument(f"File: kind must be 'binaryio', got {kind!r}")
        self.media_type = mime_type or "application/octet-stream"

    @classmethod
    def from_sample(cls, sample: Any, **kwargs: Any) -> File:
        """A File descriptor; a path sample sets the media type from its extension."""
        import mimetypes

        if isinstance(sample, str | os.PathLike):
            guessed, _ = mimetypes.guess_type(os.fspath(sample))
            kwargs.setdefault("mime_type", guessed)
        return cls(**kwargs)

    def validate(self, value: Any) -> Any:
        return value

    def decode(self, data: bytes) -> io.BytesIO:
        return io.BytesIO(data)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str | os.PathLike):
            with open(value, "rb") as f:
                return f.read()
        read = getattr(value, "read", None)
        if callable(read):
            data = read()
            if isinstance(data, bytes):
                return data
        raise InvalidArgument(f"File output must be bytes, a path or a binary file, got {value!r}")

    def __repr__(self) -> str:
        return f"File(mime_type={self.media_type!r})"
