"""Labels and metadata made JSON-able: numpy and datetime values converted, others refused.

As in BentoML, label values are coerced with ``str()`` and NaN/infinite floats are kept
(``info.json`` writes them as ``NaN``/``Infinity``, which Python's json reads back).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protos.errors import InvalidArgument

__all__ = ["normalize_labels", "normalize_metadata"]


def normalize_labels(labels: dict[str, Any] | None) -> dict[str, str]:
    """Labels are str -> str: keys must be strings, values are coerced with ``str()``."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidArgument(f"labels must be a dict of str to str, got {type(labels).__name__}")
    for key in labels:
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"label key {key!r} must be a non-empty string")
    return {key: value if isinstance(value, str) else str(value) for key, value in labels.items()}


def normalize_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON-able copy of ``metadata``; an unsupported value raises naming its key path."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"metadata must be a dict, got {type(metadata).__name__}")
    return {_key(k, "metadata"): _convert(v, f"metadata[{k!r}]") for k, v in metadata.items()}


def _key(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise InvalidArgument(f"{where} key {key!r} must be a string, got {type(key).__name__}")
    return key


def _convert(value: Any, where: str) -> Any:
    import numpy as np

    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value  # NaN and infinities included (Python's json round-trips them)
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64 | np.timedelta64) or value.dtype.kind in "OV":
            raise InvalidArgument(f"{where} has unsupported numpy type {value.dtype}")
        return _convert(value.item(), where)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufcUS" or value.dtype.kind == "c":
            raise InvalidArgument(f"{where} is an array of unsupported dtype {value.dtype}")
        return _convert(value.tolist(), where)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {_key(k, where): _convert(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bytes):
        raise InvalidArgument(f"{where} is bytes; decode it to str first")
    raise InvalidArgument(
        f"{where} has unsupported type {type(value).__name__}: use str, int, float, bool, "
        "None, list, dict, numpy scalars/arrays or datetime"
    )
