"""``JSON``: a JSON document (optionally a pydantic model) as one BYTES tensor."""

from __future__ import annotations

import dataclasses
import json as _json
from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor

__all__ = ["JSON"]


def _default(value: Any) -> Any:
    """JSON for what the stdlib encoder refuses: numpy values, dataclasses, pydantic models."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JSON(IODescriptor):
    """A JSON value; with ``pydantic_model`` the input is parsed into that model."""

    media_type = "application/json"

    def __init__(self, *, pydantic_model: type | None = None, json_encoder: Any = None) -> None:
        if pydantic_model is not None and not hasattr(pydantic_model, "model_validate"):
            raise InvalidArgument(f"JSON: {pydantic_model!r} is not a pydantic model class")
        self.pydantic_model = pydantic_model
        self.json_encoder = json_encoder
        self.sample: Any = None

    @classmethod
    def from_sample(cls, sample: Any, **kwargs: Any) -> JSON:
        """A JSON descriptor for values like ``sample`` (a pydantic instance sets the model)."""
        model = type(sample) if hasattr(type(sample), "model_validate") else None
        descriptor = cls(pydantic_model=kwargs.pop("pydantic_model", model), **kwargs)
        descriptor.sample = sample
        return descriptor

    def validate(self, value: Any) -> Any:
        if self.pydantic_model is None or isinstance(value, self.pydantic_model):
            return value
        try:
            return self.pydantic_model.model_validate(value)  # type: ignore[attr-defined]
        except Exception as exc:  # pydantic.ValidationError, without importing pydantic here
            raise InvalidArgument(f"invalid {self.pydantic_model.__name__}: {exc}") from None

    def decode(self, data: bytes) -> Any:
        try:
            value = _json.loads(data)
        except ValueError as exc:
            raise InvalidArgument(f"JSON input is not valid JSON: {exc}") from None
        return self.validate(value)

    def encode(self, value: Any) -> bytes:
        try:
            return _json.dumps(value, cls=self.json_encoder, default=_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"API result cannot be written as JSON: {exc}") from None

    def __repr__(self) -> str:
        return f"JSON(pydantic_model={self.pydantic_model})"
