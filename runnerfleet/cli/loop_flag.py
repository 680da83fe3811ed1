"""The ``--event-loop`` flag, one definition for both long-running processes."""

from __future__ import annotations

import click

from protos.event_loop import EVENT_LOOPS

__all__ = ["event_loop_option"]

event_loop_option = click.option(
    "--event-loop",
    type=click.Choice(EVENT_LOOPS),
    default=None,
    help="asyncio event loop: uvloop where installed (auto, default), uvloop, or asyncio's own.",
)
