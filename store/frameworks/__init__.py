"""Framework adapters: how each framework saves, loads and calls a model.

An adapter module provides ``FRAMEWORK``, ``check(obj)``, ``save(obj, directory)``,
``load(model, device)``, ``default_signatures(obj)``, ``has_method(obj, name)``,
``make_method(obj, name, device)`` and ``framework_version()``. Heavy libraries are imported
inside those functions, so ``import runnerfleet`` stays fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from protos.errors import InvalidArgument

__all__ = ["get_adapter", "ADAPTERS"]

# ModelInfo.module -> adapter module
ADAPTERS = {
    "sklearn": "store.frameworks.sklearn",
    "pytorch": "store.frameworks.pytorch",
    "torchscript": "store.frameworks.pytorch",  # the pytorch adapter saves ScriptModules
    "picklable_model": "store.frameworks.picklable",
    "files": "store.frameworks.files",  # runnerfleet.models.create: files the user wrote
}


def get_adapter(module: str) -> ModuleType:
    """The adapter for a ``ModelInfo.module`` value."""
    target = ADAPTERS.get(module)
    if target is None:
        raise InvalidArgument(f"unknown model framework {module!r}; known: {sorted(ADAPTERS)}")
    return importlib.import_module(target)
