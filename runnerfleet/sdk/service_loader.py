"""Import the ``module:attr`` a ``--service`` flag names and return its runnerfleet.Service.

The gateway (to serve the APIs) and the workers (to host the runners) import the same service
file, the way BentoML's API server and runner processes do.
"""

from __future__ import annotations

import importlib
from typing import Any

from protos.errors import InvalidArgument

__all__ = ["load_service"]


def load_service(spec: str) -> Any:
    """Import ``module:attr`` and return the runnerfleet.Service it names."""
    from runnerfleet.sdk.service import Service

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgument(f"--service {spec!r}: expected module:attr, e.g. my_service:svc")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"--service {spec!r}: cannot import {module_name}: {exc}") from None
    service = getattr(module, attr, None)
    if not isinstance(service, Service):
        raise InvalidArgument(
            f"--service {spec!r}: {attr} is {type(service).__name__}, not a runnerfleet.Service"
        )
    return service
