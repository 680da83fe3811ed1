"""IO descriptors for Service APIs: what an API accepts and returns, checked at the edge.

Mirrors ``bentoml.io.NumpyNdarray``: a declared dtype is converted to unless ``enforce_dtype``
(then a mismatch is refused); a declared shape (``-1`` = any size) is reshaped to when the sizes
allow, else passed through, unless ``enforce_shape`` (then a mismatch is refused). Refusals
raise ``InvalidArgument``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from protos.codec import numpy_to_datatype
from protos.errors import InvalidArgument

__all__ = ["IODescriptor", "NumpyNdarray"]


@runtime_checkable
class IODescriptor(Protocol):
    """Anything a Service API can declare as its input or output."""

    def validate(self, arr: Any) -> np.ndarray: ...

    def to_spec(self, name: str) -> dict[str, Any]: ...


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

    def _check_dtype(self, arr: np.ndarray) -> np.ndarray:
        if self.dtype is None or arr.dtype == self.dtype:
            return arr
        if self.enforce_dtype:
            raise InvalidArgument(f"expected an array of dtype {self.dtype}, got {arr.dtype}")
        try:
            return arr.astype(self.dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"cannot convert an array of dtype {arr.dtype} to {self.dtype}: {exc}"
            ) from None

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

    def to_spec(self, name: str) -> dict[str, Any]:
        """Metadata for this tensor: name, wire datatype (None = any) and shape (None = any)."""
        return {
            "name": name,
            "datatype": None if self.dtype is None else numpy_to_datatype(self.dtype),
            "shape": None if self.shape is None else list(self.shape),
        }
