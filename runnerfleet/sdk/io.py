"""IO descriptors for Service APIs: what an API accepts and returns, checked at the edge.

Mirrors ``bentoml.io.NumpyNdarray``: an array is cast to a declared dtype when
``np.can_cast(..., "same_kind")`` allows it (float64 -> float32, int -> float); any other dtype
is refused with ``enforce_dtype`` and passed through unchanged without it (never a silent
float -> int truncation). A declared shape (``-1`` = any size) is reshaped to when the sizes
allow, else passed through, unless ``enforce_shape`` (then a mismatch is refused). Refusals
raise ``InvalidArgument``. The other descriptors (JSON, Text, PandasDataFrame, PandasSeries,
Image, File, Multipart) live in ``runnerfleet.sdk.io_descriptors`` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from protos.codec import numpy_to_datatype
from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors import (
    JSON,
    File,
    Image,
    Multipart,
    PandasDataFrame,
    PandasSeries,
    Text,
    WireTensor,
)
from runnerfleet.sdk.io_descriptors.base import one_tensor

__all__ = [
    "IODescriptor",
    "NumpyNdarray",
    "JSON",
    "Text",
    "PandasDataFrame",
    "PandasSeries",
    "Image",
    "File",
    "Multipart",
    "WireTensor",
]


@runtime_checkable
class IODescriptor(Protocol):
    """Anything a Service API can declare as its input or output."""

    def validate(self, arr: Any) -> Any: ...

    def to_spec(self, name: str) -> dict[str, Any]: ...

    def wire_specs(self, role: str) -> list[dict[str, Any]]: ...

    def from_wire(self, tensors: Sequence[WireTensor]) -> Any: ...

    def to_wire(self, value: Any, role: str) -> list[WireTensor]: ...


def _shape_matches(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    return len(expected) == len(actual) and all(
        e == -1 or e == a for e, a in zip(expected, actual, strict=True)
    )


class NumpyNdarray:
    """A numpy array of an optional dtype and shape (``-1`` marks a dimension of any size)."""

    def __init__(
        self,
        dtype: Any = None,
        shape: Sequence[int] | None = None,
        enforce_dtype: bool = False,
        enforce_shape: bool = False,
    ) -> None:
        try:
            self.dtype: np.dtype | None = None if dtype is None else np.dtype(dtype)
        except TypeError as exc:
            raise InvalidArgument(f"NumpyNdarray: {dtype!r} is not a numpy dtype: {exc}") from None
        if self.dtype is not None:
            numpy_to_datatype(self.dtype)  # refuse dtypes the wire cannot carry, at declaration
        self.shape: tuple[int, ...] | None = None
        if shape is not None:
            dims = tuple(int(d) for d in shape)
            if any(d < -1 for d in dims):
                raise InvalidArgument(
                    f"NumpyNdarray: shape {list(dims)} may hold only sizes >= 0 or -1 (any size)"
                )
            self.shape = dims
        if enforce_dtype and self.dtype is None:
            raise InvalidArgument("NumpyNdarray: enforce_dtype=True needs a dtype")
        if enforce_shape and self.shape is None:
            raise InvalidArgument("NumpyNdarray: enforce_shape=True needs a shape")
        self.enforce_dtype = enforce_dtype
        self.enforce_shape = enforce_shape

    def __repr__(self) -> str:
        return (
            f"NumpyNdarray(dtype={self.dtype}, shape={self.shape}, "
            f"enforce_dtype={self.enforce_dtype}, enforce_shape={self.enforce_shape})"
        )

    def validate(self, arr: Any) -> np.ndarray:
        """``arr`` as an ndarray that fits this declaration (converted if allowed), else raise."""
        try:
            out = np.asarray(arr)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidArgument(
                f"expected a numpy array, got {type(arr).__name__}: {exc}"
            ) from None
        return self._check_shape(self._check_dtype(out))

    @classmethod
    def from_sample(
        cls, sample: Any, enforce_dtype: bool = False, enforce_shape: bool = False
    ) -> NumpyNdarray:
        """A descriptor with the dtype and shape of ``sample`` (as BentoML's from_sample)."""
        arr = np.asarray(sample)
        descriptor = cls(arr.dtype, arr.shape, enforce_dtype, enforce_shape)
        descriptor.sample = arr
        return descriptor

    sample: np.ndarray | None = None

    def _check_dtype(self, arr: np.ndarray) -> np.ndarray:
        if self.dtype is None or arr.dtype == self.dtype:
            return arr
        if np.can_cast(arr.dtype, self.dtype, casting="same_kind"):
            return arr.astype(self.dtype, casting="same_kind")
        if self.enforce_dtype:
            raise InvalidArgument(
                f"expected an array of dtype {self.dtype}, got {arr.dtype} "
                "(which does not cast to it within its kind)"
            )
        return arr  # as BentoML: no lossy cast unless asked for

    def _check_shape(self, arr: np.ndarray) -> np.ndarray:
        if self.shape is None or _shape_matches(self.shape, arr.shape):
            return arr
        if self.enforce_shape:
            raise InvalidArgument(
                f"expected an array of shape {list(self.shape)} (-1 = any size), "
                f"got {list(arr.shape)}"
            )
        if self.shape.count(-1) <= 1:  # best effort, as BentoML: reshape when the sizes allow
            fixed = math.prod(d for d in self.shape if d != -1)
            if arr.size == fixed or (-1 in self.shape and fixed and arr.size % fixed == 0):
                return arr.reshape(self.shape)
        return arr

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        """The one tensor this travels as: ``input__0`` / ``output__0``."""
        return [self.to_spec(f"{role}__0")]

    def from_wire(self, tensors: Sequence[WireTensor]) -> np.ndarray:
        """The array of the request's only tensor, validated."""
        return self.validate(one_tensor(tensors, "NumpyNdarray").array)

    def to_wire(self, value: Any, role: str) -> list[WireTensor]:
        """The API's result as its one tensor."""
        return [WireTensor(f"{role}__0", self.validate(value))]

    def to_spec(self, name: str) -> dict[str, Any]:
        """Metadata for this tensor: name, wire datatype (None = any) and shape (None = any)."""
        return {
            "name": name,
            "datatype": None if self.dtype is None else numpy_to_datatype(self.dtype),
            "shape": None if self.shape is None else list(self.shape),
        }
