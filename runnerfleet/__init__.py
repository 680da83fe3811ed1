"""RunnerFleet's public face: ``runnerfleet.sklearn``/``pytorch``/``models``, ``Tag``, ``Service``.

``Service``, ``Runner``, ``io``, ``client`` and the other submodules load lazily on first use, so
importing ``runnerfleet`` does not pull in grpc or the serving stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from runnerfleet import models, pytorch, sklearn
from store.model import Model
from store.saving import runnerfleet_version
from store.tag import Tag

__version__ = runnerfleet_version()

__all__ = [
    "__version__",
    "sklearn",
    "pytorch",
    "torchscript",
    "picklable_model",
    "models",
    "Tag",
    "Model",
    "Service",
    "io",
    "client",
    "Runnable",
    "Runner",
    "Context",
    "exceptions",
    "types",
    "metrics",
]

_LAZY = {
    "Service": ("runnerfleet.service", "Service"),
    "Runnable": ("runnerfleet.sdk.runnable", "Runnable"),
    "Runner": ("runnerfleet.runner", "Runner"),
    "Context": ("runnerfleet.sdk.context", "Context"),
    "io": ("runnerfleet.io", None),
    "client": ("runnerfleet.client", None),
    "exceptions": ("runnerfleet.exceptions", None),
    "types": ("runnerfleet.types", None),
    "metrics": ("runnerfleet.metrics", None),
    "torchscript": ("runnerfleet.torchscript", None),
    "picklable_model": ("runnerfleet.picklable_model", None),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'runnerfleet' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
