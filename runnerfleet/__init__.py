"""RunnerFleet's public face: ``runnerfleet.sklearn``/``pytorch``/``models``, ``Tag``, ``Service``.

``Service``, ``io`` and ``client`` load lazily on first use, so importing ``runnerfleet`` does not
pull in grpc or the serving stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from runnerfleet import models, pytorch, sklearn
from store.tag import Tag

__all__ = [
    "sklearn",
    "pytorch",
    "models",
    "Tag",
    "Service",
    "io",
    "client",
    "Runnable",
    "Runner",
    "Context",
]

_LAZY = {
    "Service": ("runnerfleet.service", "Service"),
    "Runnable": ("runnerfleet.sdk.runnable", "Runnable"),
    "Runner": ("runnerfleet.runner", "Runner"),
    "Context": ("runnerfleet.sdk.context", "Context"),
    "io": ("runnerfleet.io", None),
    "client": ("runnerfleet.client", None),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'runnerfleet' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
