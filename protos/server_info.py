"""What every RunnerFleet server says about itself in ServerMetadata (gateway and worker alike)."""

from __future__ import annotations

import importlib.metadata

__all__ = ["SERVER_NAME", "server_version"]

SERVER_NAME = "runnerfleet"


def server_version() -> str:
    """The installed RunnerFleet version ("0.0.0" when run from a tree that is not installed)."""
    try:
        return importlib.metadata.version("runnerfleet")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
