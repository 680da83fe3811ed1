"""Check decoded request inputs against a method's saved input spec, with actionable messages."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from protos.codec import numpy_to_datatype
from protos.errors import InvalidArgument
from runner_worker.runner import MethodInfo

__all__ = ["validate_inputs", "spec_datatype"]


@functools.lru_cache(maxsize=256)  # spec dtype names come from saved signatures: a few
def spec_datatype(dtype: str) -> str:
    """The wire datatype of a spec's numpy dtype name (``float32`` -> ``FP32``)."""
    return numpy_to_datatype(np.dtype(dtype))


def validate_inputs(model: str, info: MethodInfo, arrays: Sequence[np.ndarray]) -> None:
    """Raise InvalidArgument unless ``arrays`` match ``info.input_spec`` (when there is one).

    Messages start ``model 'M' method 'F'`` (built only for a refusal: this runs per request).
    """
    specs = info.input_spec
    if not specs:
        if not arrays:
            raise InvalidArgument(
                f"{_where(model, info)} needs at least one input tensor; got none"
            )
        return
    if len(arrays) != len(specs):
        names = ", ".join(f"{s.name} {spec_datatype(s.dtype)} {list(s.shape)}" for s in specs)
        raise InvalidArgument(
            f"{_where(model, info)} takes {len(specs)} input(s) ({names}); the request has "
            f"{len(arrays)}"
        )
    for i, (spec, array) in enumerate(zip(specs, arrays, strict=True)):
        want = spec_datatype(spec.dtype)
        got = numpy_to_datatype(array.dtype)
        if want != got:
            raise InvalidArgument(
                f"{_where(model, info)} input {i} ({spec.name}) must be {want}, got {got}; "
                f"convert the array to {np.dtype(spec.dtype).name} before sending"
            )
        if len(spec.shape) != array.ndim or any(
            s >= 0 and s != d for s, d in zip(spec.shape, array.shape, strict=True)
        ):
            raise InvalidArgument(
                f"{_where(model, info)} input {i} ({spec.name}) must have shape "
                f"{list(spec.shape)} (-1 = any size), got {list(array.shape)}"
            )


def _where(model: str, info: MethodInfo) -> str:
    return f"model {model!r} method {info.name!r}"
