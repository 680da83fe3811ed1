"""One bidirectional-stream shape for ModelStreamInfer, shared by the gateway and the worker.

Each request read from the stream is answered by its own task, so a slow request does not hold
back the ones behind it; answers are yielded as they finish (Triton's stream semantics: the
client matches them by id). When the client stops reading (or hangs up), every task still
running is cancelled. ``answer`` must turn request errors into an answer itself (the stream's
error wrapper); anything else it raises ends that request without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

__all__ = ["answer_stream"]

In = TypeVar("In")
Out = TypeVar("Out")


async def answer_stream(
    requests: AsyncIterable[In], answer: Callable[[In], Awaitable[Out]]
) -> AsyncIterator[Out]:
    """Yield ``answer(request)`` for every request of ``requests``, concurrently, as they finish."""
    answers: asyncio.Queue[Out | None] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def answer_one(request: In) -> None:
        answers.put_nowait(await answer(request))

    async def read() -> None:
        try:
            async for request in requests:
                task = asyncio.create_task(answer_one(request), name="stream-infer-item")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(read(), name="stream-infer-reader")
    try:
        while (item := await answers.get()) is not None:
            yield item
    finally:
        reader.cancel()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader  # a broken request stream just ends the answers
