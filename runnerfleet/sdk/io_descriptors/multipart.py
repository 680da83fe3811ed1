"""``Multipart``: named parts, one tensor per part (named by the part), each its own descriptor.

The API function receives the parts as keyword arguments, as in BentoML. Each part must travel
as exactly one tensor (NumpyNdarray, JSON, Text, Image, File, PandasSeries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor, WireTensor

__all__ = ["Multipart"]


class Multipart(IODescriptor):
    """``Multipart(text=Text(), arr=NumpyNdarray())``: the function gets ``text=``, ``arr=``."""

    def __init__(self, **parts: Any) -> None:
        if not parts:
            raise InvalidArgument("Multipart needs at least one part, e.g. Multipart(x=Text())")
        for name, part in parts.items():
            if not hasattr(part, "from_wire") or not hasattr(part, "wire_specs"):
                raise InvalidArgument(f"Multipart part {name!r} is not an IO descriptor: {part!r}")
            if isinstance(part, Multipart) or len(part.wire_specs("input")) != 1:
                raise InvalidArgument(
                    f"Multipart part {name!r} must travel as one tensor; {part!r} does not"
                )
        self.parts = dict(parts)

    def validate(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidArgument(f"Multipart expects a dict of parts, got {type(value).__name__}")
        missing = sorted(set(self.parts) - set(value))
        extra = sorted(set(value) - set(self.parts))
        if missing or extra:
            raise InvalidArgument(
                f"Multipart parts are {sorted(self.parts)}; missing {missing}, unexpected {extra}"
            )
        return {name: part.validate(value[name]) for name, part in self.parts.items()}

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        specs = []
        for name, part in self.parts.items():
            spec = dict(part.wire_specs(role)[0])
            spec["name"] = name
            specs.append(spec)
        return specs

    def from_wire(self, tensors: Sequence[WireTensor]) -> dict[str, Any]:
        by_name = {t.name: t for t in tensors}
        missing = [n for n in self.parts if n not in by_name]
        if missing:
            raise InvalidArgument(
                f"Multipart input lacks parts {missing}; send one tensor per part, named by "
                f"the part (got {sorted(by_name)})"
            )
        return {name: part.from_wire([by_name[name]]) for name, part in self.parts.items()}

    def to_wire(self, value: Any, role: str) -> list[WireTensor]:
        parts = self.validate(value)
        out = []
        for name, part in self.parts.items():
            (tensor,) = part.to_wire(parts[name], role)
            out.append(WireTensor(name, tensor.array, tensor.content_type))
        return out

    def __repr__(self) -> str:
        return f"Multipart({', '.join(f'{k}={v!r}' for k, v in self.parts.items())})"
