"""Runner options checked once: names, per-method batch options, batch sizes, output types.

Kept apart from ``runner.py`` so the Runner class stays about binding and calling.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from protos.errors import InvalidArgument

__all__ = [
    "MethodOptions",
    "normalize_method_configs",
    "check_batch_sizes",
    "lower_name",
    "runner_name",
    "to_framework_outputs",
]

_log = logging.getLogger(__name__)
_METHOD_KEYS = {"max_batch_size", "max_latency_ms"}


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """Batch options of one runner method on its worker (None = the worker's flag)."""

    max_batch_size: int | None = None
    max_latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def lower_name(name: object, what: str) -> str:
    """``name`` lower-cased, with a warning when that changed it (BentoML does the same)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} must be a non-empty string, got {name!r}")
    lowered = name.lower()
    if lowered != name:
        _log.warning("%s %r converted to lowercase: %r", what, name, lowered)
    return lowered


def runner_name(name: object) -> str:
    """A valid runner name (lower-cased with a warning), else InvalidArgument."""
    from store.tag import validate_part

    lowered = lower_name(name, "runner name")
    validate_part(lowered, "name")
    return lowered


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{where}: max_batch_size must be an int >= 1, got {value!r}")
    return value


def _positive_ms(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgument(f"{where}: max_latency_ms must be a number > 0, got {value!r}")
    return float(value)


def normalize_method_configs(
    runner: str,
    methods: Mapping[str, Any],
    max_batch_size: int | None,
    max_latency_ms: float | None,
    method_configs: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, MethodOptions]:
    """Per-method options: ``method_configs[m]`` over the runner-wide values."""
    where = f"runner {runner!r}"
    default = MethodOptions(
        _positive_int(max_batch_size, where), _positive_ms(max_latency_ms, where)
    )
    configs = dict(method_configs or {})
    unknown = set(configs) - set(methods)
    if unknown:
        raise InvalidArgument(
            f"{where}: method_configs names {sorted(unknown)}, which it does not have "
            f"(methods: {sorted(methods)})"
        )
    options: dict[str, MethodOptions] = {}
    for method in methods:
        config = dict(configs.get(method) or {})
        bad = set(config) - _METHOD_KEYS
        if bad:
            raise InvalidArgument(
                f"{where}: method_configs[{method!r}] has unknown keys {sorted(bad)}; "
                f"known: {sorted(_METHOD_KEYS)}"
            )
        at = f"{where} method {method!r}"
        options[method] = MethodOptions(
            _positive_int(config.get("max_batch_size", default.max_batch_size), at),
            _positive_ms(config.get("max_latency_ms", default.max_latency_ms), at),
        )
    return options


def _batch_size(value: Any, axis: int) -> int | None:
    shape = getattr(value, "shape", None)
    if shape is not None:
        if len(shape) == 0 or not -len(shape) <= axis < len(shape):
            return None
        return int(shape[axis])
    if isinstance(value, list | tuple) and axis == 0:
        return len(value)
    return None


def check_batch_sizes(config: Any, args: tuple, where: str) -> None:
    """A batchable call's arguments must agree on their size along ``batch_dim[0]``."""
    if not getattr(config, "batchable", False) or len(args) < 2:
        return
    axis = config.batch_dim[0]
    sizes = [s for s in (_batch_size(a, axis) for a in args) if s is not None]
    if len(set(sizes)) > 1:
        raise InvalidArgument(
            f"{where}: batchable arguments must have the same batch size along axis {axis}, "
            f"got {sizes}"
        )


def _torch_of(value: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        arr = value if value.flags.writeable else value.copy()
        return torch.from_numpy(arr)
    if isinstance(value, tuple | list):
        return type(value)(_torch_of(v) for v in value)
    if isinstance(value, dict):
        return {k: _torch_of(v) for k, v in value.items()}
    return value


def to_framework_outputs(result: Any, framework: str | None) -> Any:
    """numpy outputs as torch tensors for a torch model's runner; anything else unchanged."""
    if framework == "pytorch":
        return _torch_of(result)
    return result
