"""Which version of a model is served when a request names none: one rule for every process.

The newest by the store's creation time, ties broken by the version string (the same order
the store uses for ``latest``). Version strings are random, so their sort order means nothing;
the gateway (choosing what to describe and where to route) and the worker (choosing what to
run) must agree, so both call this. Pure: no grpc, no store access.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["served_version"]


def served_version(created_unix_s: Mapping[str, float]) -> str | None:
    """The served version among ``{version: creation time (Unix seconds)}``; None if empty."""
    if not created_unix_s:
        return None
    return max(created_unix_s, key=lambda version: (created_unix_s[version], version))
