"""What every IO descriptor does: check a Python value, and map it to and from wire tensors.

``validate`` is for local calls (``ServiceApi.call``); ``from_wire``/``to_wire`` are what the
gateway uses; ``wire_specs`` is what ModelMetadata/ModelConfig report. A descriptor that takes
one tensor names it ``input__0`` / ``output__0``, as NumpyNdarray does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from protos.errors import InvalidArgument

__all__ = [
    "IODescriptor",
    "WireTensor",
    "default_name",
    "one_tensor",
    "bytes_tensor",
    "bytes_of",
]

CONTENT_TYPE = "content_type"


@dataclasses.dataclass(frozen=True)
class WireTensor:
    """One tensor as the gateway sends or receives it (``content_type`` as a parameter)."""

    name: str
    array: np.ndarray
    content_type: str | None = None


def default_name(role: str) -> str:
    """``input__0`` or ``output__0``: the name of a descriptor's only tensor."""
    return f"{role}__0"


class IODescriptor:
    """Base of the descriptors in this package (NumpyNdarray implements the same methods)."""

    media_type: str | None = None

    def validate(self, value: Any) -> Any:
        """``value`` checked (and converted where allowed) for a local call."""
        return value

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        """The tensors this descriptor travels as: name, datatype, shape, content_type."""
        return [
            {
                "name": default_name(role),
                "datatype": "BYTES",
                "shape": [1],
                "content_type": self.media_type,
            }
        ]

    def to_spec(self, name: str) -> dict[str, Any]:
        """The one tensor's spec (what a single-tensor caller of the old interface reads)."""
        spec = dict(self.wire_specs("input")[0])
        spec["name"] = name
        return spec

    def from_wire(self, tensors: Sequence[WireTensor]) -> Any:
        """The Python value the API function receives, from the request's tensors."""
        return self.decode(bytes_of(one_tensor(tensors, type(self).__name__)))

    def to_wire(self, value: Any, role: str) -> list[WireTensor]:
        """The tensors the API's result travels as."""
        data = self.encode(self.validate(value))
        return [WireTensor(default_name(role), bytes_tensor(data), self.media_type)]

    def decode(self, data: bytes) -> Any:  # pragma: no cover - single-tensor subclasses
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:  # pragma: no cover - single-tensor subclasses
        raise NotImplementedError


def one_tensor(tensors: Sequence[WireTensor], what: str) -> WireTensor:
    """The only tensor of a request, else InvalidArgument saying how many came."""
    if len(tensors) != 1:
        raise InvalidArgument(f"{what} takes exactly one input tensor, got {len(tensors)}")
    return tensors[0]


def bytes_tensor(data: bytes) -> np.ndarray:
    """A BYTES tensor of shape ``[1]`` holding ``data``."""
    out = np.empty(1, dtype=object)
    out[0] = bytes(data)
    return out


def bytes_of(tensor: WireTensor) -> bytes:
    """The one element of a BYTES tensor of one element, else InvalidArgument."""
    arr = tensor.array
    if arr.dtype.kind not in "OSU" or arr.size != 1:
        raise InvalidArgument(
            f"tensor {tensor.name!r} must be BYTES with one element, got {arr.dtype} "
            f"of shape {list(arr.shape)}"
        )
    value = arr.reshape(-1)[0]
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
