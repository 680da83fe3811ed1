"""Signatures from user options, checked against the model, with specs inferred from a sample.

``batch_dim`` is recorded, not applied here: whoever batches (the worker's batcher) concatenates
inputs along ``batch_dim[0]`` and splits outputs along ``batch_dim[1]``. A local runner runs
each call as given, so a caller that batches by hand must follow the same axes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from protos.errors import InvalidArgument
from store.model import ModelSignature, TensorSpec

__all__ = ["normalize_signatures", "infer_specs", "as_input_tuple", "as_output_tuple"]

_KNOWN_OPTIONS = {
    "batchable",
    "batch_dim",
    "input_spec",
    "output_spec",
    "input_names",
    "output_names",
}


def _batch_dim(value: Any, method: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise InvalidArgument(f"signature {method!r}: batch_dim must be an int or (in, out) pair")
    if isinstance(value, int):
        return (value, value)
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise InvalidArgument(
        f"signature {method!r}: batch_dim must be an int or an (input, output) pair of ints, "
        f"got {value!r}"
    )


def _spec_list(value: Any, method: str, which: str) -> list[TensorSpec] | None:
    if value is None:
        return None
    try:
        return [v if isinstance(v, TensorSpec) else TensorSpec.from_dict(v) for v in value]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"signature {method!r}: bad {which}: {exc}") from exc


def normalize_signatures(
    options: Mapping[str, Any],
    has_method: Callable[[str], bool],
    model_type: str,
) -> tuple[dict[str, ModelSignature], dict[str, dict[str, list[str]]]]:
    """Signatures plus optional tensor names per method; a missing method fails here."""
    if not isinstance(options, Mapping) or not options:
        raise InvalidArgument("signatures must be a non-empty dict of method name -> options")
    signatures: dict[str, ModelSignature] = {}
    names: dict[str, dict[str, list[str]]] = {}
    for method, opts in options.items():
        opts = {} if opts is None else opts
        if isinstance(opts, ModelSignature):
            opts = {
                "batchable": opts.batchable,
                "batch_dim": opts.batch_dim,
                "input_spec": opts.input_spec,
                "output_spec": opts.output_spec,
            }
        if not isinstance(method, str) or not method.isidentifier():
            raise InvalidArgument(f"signature name {method!r} is not a valid method name")
        if not isinstance(opts, Mapping):
            raise InvalidArgument(f"signature {method!r}: options must be a dict")
        unknown = set(opts) - _KNOWN_OPTIONS
        if unknown:
            raise InvalidArgument(f"signature {method!r}: unknown options {sorted(unknown)}")
        if not has_method(method):
            raise InvalidArgument(
                f"signature names method {method!r}, but model type {model_type} has no such "
                "callable method"
            )
        signatures[method] = ModelSignature(
            batchable=bool(opts.get("batchable", False)),
            batch_dim=_batch_dim(opts.get("batch_dim", 0), method),
            input_spec=_spec_list(opts.get("input_spec"), method, "input_spec"),
            output_spec=_spec_list(opts.get("output_spec"), method, "output_spec"),
        )
        names[method] = {
            "input": list(opts.get("input_names") or []),
            "output": list(opts.get("output_names") or []),
        }
    return signatures, names


def as_input_tuple(sample: Any) -> tuple[Any, ...]:
    """A sample given as one array or a tuple/list of arrays, as a tuple of arguments."""
    return tuple(sample) if isinstance(sample, tuple | list) else (sample,)


def as_output_tuple(result: Any) -> tuple[Any, ...]:
    """A method's result (one array or a tuple/list of arrays) as a tuple of outputs."""
    return tuple(result) if isinstance(result, tuple | list) else (result,)


def _specs(
    arrays: tuple[Any, ...], names: list[str], prefix: str, batch_axis: int | None, where: str
) -> list[TensorSpec]:
    import numpy as np

    specs = []
    for i, value in enumerate(arrays):
        arr = np.asarray(value)
        shape = list(arr.shape)
        if batch_axis is not None:
            if not -arr.ndim <= batch_axis < arr.ndim:
                raise InvalidArgument(
                    f"{where} {i} has shape {arr.shape}, which has no batch_dim {batch_axis}"
                )
            shape[batch_axis] = -1
        name = names[i] if i < len(names) else f"{prefix}__{i}"
        specs.append(TensorSpec(name=name, dtype=arr.dtype.name, shape=tuple(shape)))
    return specs


def infer_specs(
    signature: ModelSignature,
    method: str,
    call: Callable[..., Any],
    sample: Any,
    names: dict[str, list[str]],
) -> ModelSignature:
    """Run ``call`` once on ``sample`` and record input/output specs (explicit specs win)."""
    args = as_input_tuple(sample)
    try:
        result = call(*args)
    except Exception as exc:  # the user's model failed on the user's sample
        raise InvalidArgument(
            f"running method {method!r} on sample_input failed: {type(exc).__name__}: {exc}"
        ) from exc
    in_axis, out_axis = signature.batch_dim
    batchable = signature.batchable
    in_spec = signature.input_spec or _specs(
        args, names["input"], "input", in_axis if batchable else None, f"{method!r} input"
    )
    out_spec = signature.output_spec or _specs(
        as_output_tuple(result),
        names["output"],
        "output",
        out_axis if batchable else None,
        f"{method!r} output",
    )
    return ModelSignature(batchable, signature.batch_dim, in_spec, out_spec)
