"""``PandasDataFrame`` (one tensor per column, named by it) and ``PandasSeries`` (one tensor).

Numeric and boolean columns keep their dtype; string and object columns travel as BYTES
(UTF-8) and come back as ``str``. Each column tensor has shape ``[rows]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protos.codec import numpy_to_datatype
from protos.errors import InvalidArgument
from runnerfleet.sdk.io_descriptors.base import IODescriptor, WireTensor, default_name, one_tensor

__all__ = ["PandasDataFrame", "PandasSeries"]


def _pd() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise InvalidArgument(
            "runnerfleet.io.PandasDataFrame needs pandas: pip install 'runnerfleet[pandas]'"
        ) from None
    return pd


def _column_to_wire(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr
    out = np.empty(arr.shape, dtype=object)
    for i, v in enumerate(arr.reshape(-1)):
        out.reshape(-1)[i] = v if isinstance(v, bytes) else str(v).encode("utf-8")
    return out


def _column_from_wire(arr: np.ndarray) -> np.ndarray:
    flat = arr.reshape(-1)
    if arr.dtype.kind != "O":
        return flat
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in flat], dtype=object)


def _datatype(dtype: Any) -> str:
    dt = np.dtype(dtype) if not hasattr(dtype, "kind") else dtype
    return numpy_to_datatype(dt) if getattr(dt, "kind", "O") in "biuf" else "BYTES"


class PandasDataFrame(IODescriptor):
    """A DataFrame; ``columns``/``dtype`` declare (and, with enforce_*, require) its layout."""

    def __init__(
        self,
        orient: str = "records",
        columns: Sequence[str] | None = None,
        dtype: Any = None,
        enforce_dtype: bool = False,
        shape: Sequence[int] | None = None,
        enforce_shape: bool = False,
    ) -> None:
        self.orient = orient
        self.columns = None if columns is None else [str(c) for c in columns]
        self.dtype = dtype  # one dtype, or {column: dtype}
        self.enforce_dtype = enforce_dtype
        self.shape = None if shape is None else tuple(int(d) for d in shape)
        self.enforce_shape = enforce_shape

    @classmethod
    def from_sample(cls, sample: Any, **kwargs: Any) -> PandasDataFrame:
        """Columns and per-column dtypes from a sample DataFrame."""
        pd = _pd()
        frame = sample if isinstance(sample, pd.DataFrame) else pd.DataFrame(sample)
        kwargs.setdefault("columns", [str(c) for c in frame.columns])
        kwargs.setdefault("dtype", {str(c): frame[c].dtype for c in frame.columns})
        kwargs.setdefault("shape", frame.shape)
        return cls(**kwargs)

    def _column_dtype(self, column: str) -> Any:
        if isinstance(self.dtype, dict):
            return self.dtype.get(column)
        return self.dtype

    def validate(self, value: Any) -> Any:
        pd = _pd()
        try:
            frame = value if isinstance(value, pd.DataFrame) else pd.DataFrame(value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"expected a DataFrame: {exc}") from None
        if (
            self.columns is not None
            and len(frame.columns) == len(self.columns)
            and list(map(str, frame.columns)) != self.columns
            and all(isinstance(c, int) for c in frame.columns)
        ):
            frame.columns = self.columns
        if (
            self.enforce_shape
            and self.shape is not None
            and any(e != -1 and e != a for e, a in zip(self.shape, frame.shape, strict=False))
        ):
            raise InvalidArgument(f"expected a DataFrame of shape {self.shape}, got {frame.shape}")
        if self.dtype is not None:
            for column in frame.columns:
                want = self._column_dtype(str(column))
                if want is None or frame[column].dtype == want:
                    continue
                if self.enforce_dtype:
                    raise InvalidArgument(
                        f"column {column!r} must be {want}, got {frame[column].dtype}"
                    )
                try:
                    frame[column] = frame[column].astype(want)
                except (TypeError, ValueError) as exc:
                    raise InvalidArgument(f"column {column!r} cannot be {want}: {exc}") from None
        return frame

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        if self.columns is None:
            return [{"name": default_name(role), "datatype": None, "shape": [-1]}]
        return [
            {
                "name": c,
                "datatype": None
                if self._column_dtype(c) is None
                else _datatype(self._column_dtype(c)),
                "shape": [-1],
            }
            for c in self.columns
        ]

    def from_wire(self, tensors: Sequence[WireTensor]) -> Any:
        pd = _pd()
        by_name = {t.name: _column_from_wire(t.array) for t in tensors}
        names = self.columns if self.columns is not None else [t.name for t in tensors]
        missing = [c for c in names if c not in by_name]
        if missing:
            raise InvalidArgument(
                f"DataFrame input lacks columns {missing}; send one tensor per column, "
                f"named by the column (got {sorted(by_name)})"
            )
        lengths = {len(by_name[c]) for c in names}
        if len(lengths) > 1:
            raise InvalidArgument(f"DataFrame columns differ in length: {sorted(lengths)}")
        return self.validate(pd.DataFrame({c: by_name[c] for c in names}))

    def to_wire(self, value: Any, role: str) -> list[WireTensor]:
        frame = self.validate(value)
        return [WireTensor(str(c), _column_to_wire(frame[c].to_numpy())) for c in frame.columns]

    def __repr__(self) -> str:
        return f"PandasDataFrame(columns={self.columns}, dtype={self.dtype})"


class PandasSeries(IODescriptor):
    """A Series as one tensor of shape ``[rows]`` (strings as BYTES)."""

    def __init__(
        self, orient: str = "records", dtype: Any = None, enforce_dtype: bool = False
    ) -> None:
        self.orient = orient
        self.dtype = dtype
        self.enforce_dtype = enforce_dtype

    @classmethod
    def from_sample(cls, sample: Any, **kwargs: Any) -> PandasSeries:
        """The sample Series' dtype."""
        series = sample if isinstance(sample, _pd().Series) else _pd().Series(sample)
        kwargs.setdefault("dtype", series.dtype)
        return cls(**kwargs)

    def validate(self, value: Any) -> Any:
        pd = _pd()
        series = value if isinstance(value, pd.Series) else pd.Series(value)
        if self.dtype is not None and series.dtype != self.dtype:
            if self.enforce_dtype:
                raise InvalidArgument(f"expected a Series of {self.dtype}, got {series.dtype}")
            try:
                series = series.astype(self.dtype)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"Series cannot be {self.dtype}: {exc}") from None
        return series

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        datatype = None if self.dtype is None else _datatype(self.dtype)
        return [{"name": default_name(role), "datatype": datatype, "shape": [-1]}]

    def from_wire(self, tensors: Sequence[WireTensor]) -> Any:
        tensor = one_tensor(tensors, "PandasSeries")
        return self.validate(_pd().Series(_column_from_wire(tensor.array)))

    def to_wire(self, value: Any, role: str) -> list[WireTensor]:
        series = self.validate(value)
        return [WireTensor(default_name(role), _column_to_wire(series.to_numpy()))]

    def __repr__(self) -> str:
        return f"PandasSeries(dtype={self.dtype})"
