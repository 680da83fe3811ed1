"""Pure numpy batch operations: count rows, check stackability, stack, slice, split, join.

A request is a list of arrays (one per positional input). Inputs are stacked along the input
batch dimension; outputs are split along the output batch dimension (``batch_dim = (in, out)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protos.errors import Internal, InvalidArgument

__all__ = [
    "BatchDim",
    "normalize_batch_dim",
    "count_rows",
    "stack_key",
    "stack",
    "slice_rows",
    "as_outputs",
    "split",
    "join",
]

BatchDim = tuple[int, int]


def normalize_batch_dim(batch_dim: int | Sequence[int]) -> BatchDim:
    """``0`` -> ``(0, 0)``; ``(in, out)`` stays as is."""
    if isinstance(batch_dim, int | np.integer):
        return int(batch_dim), int(batch_dim)
    dims = tuple(int(d) for d in batch_dim)
    if len(dims) != 2:
        raise InvalidArgument(f"batch_dim must be an int or an (in, out) pair, got {batch_dim!r}")
    return dims[0], dims[1]


def _axis(array: np.ndarray, dim: int, what: str) -> int:
    if array.ndim == 0:
        raise InvalidArgument(f"{what} is a scalar (0-d): it has no batch dimension {dim}")
    if not -array.ndim <= dim < array.ndim:
        raise InvalidArgument(
            f"{what} has {array.ndim} dimension(s), no batch dimension {dim} (shape {array.shape})"
        )
    return dim % array.ndim


def count_rows(arrays: Sequence[np.ndarray], dim: int) -> int:
    """Rows along ``dim``; every input must agree."""
    if not arrays:
        raise InvalidArgument("a request needs at least one input tensor")
    rows = {a.shape[_axis(a, dim, f"input {i}")] for i, a in enumerate(arrays)}
    if len(rows) != 1:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise InvalidArgument(
            f"inputs disagree on the number of rows along batch dimension {dim}: {shapes}"
        )
    return int(rows.pop())


def stack_key(arrays: Sequence[np.ndarray], dim: int) -> tuple[Any, ...]:
    """What must match for two requests to share a batch: dtypes and shapes without ``dim``."""
    key = []
    for i, a in enumerate(arrays):
        axis = _axis(a, dim, f"input {i}")
        key.append((a.dtype.str, a.shape[:axis] + a.shape[axis + 1 :]))
    return tuple(key)


def stack(
    requests: Sequence[Sequence[np.ndarray]],
    dim: int,
    keys: Sequence[object] | None = None,
) -> list[np.ndarray]:
    """Concatenate each input across requests along ``dim`` (one request: no copy).

    ``keys``: each request's ``stack_key``, when the caller has them (the batcher measured
    them on arrival), so they are not worked out again per batch.
    """
    if len(requests) == 1:
        return list(requests[0])
    if keys is None:
        keys = [stack_key(r, dim) for r in requests]
    if len(set(keys)) != 1:
        raise InvalidArgument("requests with different trailing shapes or dtypes cannot stack")
    return [np.concatenate(parts, axis=dim) for parts in zip(*requests, strict=True)]


def slice_rows(arrays: Sequence[np.ndarray], start: int, stop: int, dim: int) -> list[np.ndarray]:
    """Rows ``[start, stop)`` of every input along ``dim`` (views, no copy)."""
    out = []
    for a in arrays:
        index = [slice(None)] * a.ndim
        index[dim % a.ndim] = slice(start, stop)
        out.append(a[tuple(index)])
    return out


def as_outputs(result: Any) -> list[np.ndarray]:
    """A model's return value (array, tuple/list of arrays, scalar) as a list of arrays."""
    if isinstance(result, tuple | list):
        return [np.asarray(r) for r in result]
    if isinstance(result, dict):
        return [np.asarray(r) for r in result.values()]
    return [np.asarray(result)]


def split(
    outputs: Sequence[np.ndarray], row_counts: Sequence[int], dim: int
) -> list[list[np.ndarray]]:
    """Split batch outputs into per-request outputs; rows out must equal rows in."""
    total = sum(row_counts)
    for i, out in enumerate(outputs):
        if out.ndim == 0 or out.shape[dim % out.ndim] != total:
            got = "a scalar" if out.ndim == 0 else f"{out.shape[dim % out.ndim]} rows"
            raise Internal(
                f"model output {i} has {got} along batch dimension {dim} "
                f"for a batch of {total} input rows (shape {out.shape})"
            )
    if len(row_counts) == 1:
        return [list(outputs)]
    bounds = np.cumsum(row_counts)[:-1]
    per_output = [np.split(out, bounds, axis=dim % out.ndim) for out in outputs]
    return [list(parts) for parts in zip(*per_output, strict=True)]


def join(parts: Sequence[Sequence[np.ndarray]], dim: int) -> list[np.ndarray]:
    """Re-join the outputs of a request that was split into chunks."""
    if len(parts) == 1:
        return list(parts[0])
    return [
        np.concatenate(chunks, axis=dim % chunks[0].ndim) for chunks in zip(*parts, strict=True)
    ]
