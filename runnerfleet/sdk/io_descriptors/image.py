"""``Image``: a PIL image as one BYTES tensor holding the encoded file (PNG, JPEG...)."""

from __future__ import annotations

import io
from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor

__all__ = ["Image"]

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/bmp": "BMP", "image/gif": "GIF"}


def _pil() -> Any:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise InvalidArgument(
            "runnerfleet.io.Image needs Pillow: pip install 'runnerfleet[image]'"
        ) from None
    return PILImage


class Image(IODescriptor):
    """An image: in, a ``PIL.Image.Image``; out, a PIL image or an array encoded as mime_type."""

    media_type: str

    def __init__(self, pilmode: str | None = None, mime_type: str = "image/png") -> None:
        if mime_type not in _FORMATS:
            raise InvalidArgument(f"Image: mime_type must be one of {sorted(_FORMATS)}")
        self.pilmode = pilmode
        self.media_type = mime_type

    @classmethod
    def from_sample(cls, sample: Any, **kwargs: Any) -> Image:
        """An Image descriptor with the sample's mode (and its format's media type)."""
        image = sample if hasattr(sample, "mode") else _pil().open(sample)
        kwargs.setdefault("pilmode", image.mode)
        fmt = (getattr(image, "format", None) or "PNG").upper()
        media = {v: k for k, v in _FORMATS.items()}.get(fmt, "image/png")
        kwargs.setdefault("mime_type", media)
        return cls(**kwargs)

    def validate(self, value: Any) -> Any:
        pil = _pil()
        if isinstance(value, pil.Image):
            image = value
        else:
            import numpy as np

            try:
                image = pil.fromarray(np.asarray(value))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"Image expects a PIL image or an array: {exc}") from None
        if self.pilmode is not None and image.mode != self.pilmode:
            image = image.convert(self.pilmode)
        return image

    def decode(self, data: bytes) -> Any:
        pil = _pil()
        try:
            image = pil.open(io.BytesIO(data))
            image.load()
        except Exception as exc:  # PIL raises several types for a bad file
            raise InvalidArgument(f"Image input is not a readable image: {exc}") from None
        return self.validate(image)

    def encode(self, value: Any) -> bytes:
        out = io.BytesIO()
        self.validate(value).save(out, format=_FORMATS[self.media_type])
        return out.getvalue()

    def __repr__(self) -> str:
        return f"Image(pilmode={self.pilmode!r}, mime_type={self.media_type!r})"
