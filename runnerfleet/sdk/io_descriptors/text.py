"""``Text``: a UTF-8 string as one BYTES tensor."""

from __future__ import annotations

from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor

__all__ = ["Text"]


class Text(IODescriptor):
    """A string (``str``); bytes are decoded as UTF-8."""

    media_type = "text/plain"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sample: str | None = None

    @classmethod
    def from_sample(cls, sample: str, **kwargs: Any) -> Text:
        """A Text descriptor whose example is ``sample``."""
        if not isinstance(sample, str):
            raise InvalidArgument(f"Text.from_sample needs a str, got {type(sample).__name__}")
        descriptor = cls(**kwargs)
        descriptor.sample = sample
        return descriptor

    def validate(self, value: Any) -> str:
        if isinstance(value, bytes):
            return self.decode(value)
        if not isinstance(value, str):
            raise InvalidArgument(f"Text expects a str, got {type(value).__name__}")
        return value

    def decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"Text input is not UTF-8: {exc}") from None

    def encode(self, value: Any) -> bytes:
        return self.validate(value).encode("utf-8")

    def __repr__(self) -> str:
        return "Text()"
