"""The event loop a process runs on: uvloop where it is installed, else the standard library's.

Both processes spend most of their CPU inside grpc.aio (on a busy gateway, over half of its
samples are grpc's own Cython callbacks, under ``Handle._run``), and grpc.aio schedules those
callbacks on whatever asyncio loop runs it. uvloop's loop (libuv, in Cython) runs them with
less overhead per callback: 5-10% less CPU per request through the cluster, measured by the
race's ``rf-asyncio`` entry beside ``rf`` (docs/ARCHITECTURE.md, "Event loop", has the
figures). Nothing else changes: the same coroutines, signal handlers and executors run on
either loop.

Choices (``--event-loop``, ``RUNNERFLEET_EVENT_LOOP``): ``auto`` (uvloop when importable, which
it is wherever the package's dependencies are installed on Linux or macOS), ``uvloop`` (refuse
to start without it) and ``asyncio`` (the standard loop, for comparison or a platform without
uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from protos.errors import InvalidArgument

__all__ = ["EVENT_LOOPS", "check_event_loop", "loop_factory", "resolved", "run"]

EVENT_LOOPS = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


def check_event_loop(name: str) -> None:
    """InvalidArgument unless ``name`` is a choice this machine can run."""
    if name not in EVENT_LOOPS:
        raise InvalidArgument(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {name!r}")
    if name == "uvloop" and not _have_uvloop():
        raise InvalidArgument("event_loop 'uvloop' asked for, but uvloop is not installed")


def resolved(name: str) -> str:
    """The loop ``name`` means here: ``uvloop`` or ``asyncio``."""
    check_event_loop(name)
    if name == "auto":
        return "uvloop" if _have_uvloop() else "asyncio"
    return name


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new loop of the kind ``name`` resolves to."""
    if resolved(name) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``name`` resolves to (default: uvloop where installed)."""
    try:
        factory = loop_factory(name)
    except BaseException:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
