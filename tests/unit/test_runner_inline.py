"""ModelRunner's fast path: calls known to take <= inline_max_s run on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

import runnerfleet
from runner_worker.runner import ModelRunner


class WhichThread:
    """Answers each row with the id of the thread that ran it; rows > 0 take 5 ms."""

    def predict(self, x):
        if x.max() > 0:
            time.sleep(0.005)
        return np.full((x.shape[0], 1), threading.get_ident(), dtype=np.int64)


def _runner(inline_max_s: float) -> ModelRunner:
    runnerfleet.picklable_model.save_model(
        "which_thread", WhichThread(), signatures={"predict": {"batchable": True}}
    )
    return ModelRunner(
        runnerfleet.models.get("which_thread:latest"), "cpu", inline_max_s=inline_max_s
    )


def _threads(runner: ModelRunner, inputs: list[np.ndarray]) -> list[bool]:
    """For each call in turn: did it run on the event loop's thread?"""

    async def calls() -> list[bool]:
        await runner.load(warmup=False)
        loop_thread = threading.get_ident()
        out = []
        for x in inputs:
            result = await runner.run("predict", [x])
            out.append(int(result[0][0, 0]) == loop_thread)
        runner.close()
        return out

    return asyncio.run(calls())


def test_fast_calls_run_inline_and_a_slow_one_sends_that_size_back(store_home) -> None:
    fast, slow = np.zeros((2, 3)), np.ones((2, 3))
    small, big = np.zeros((1, 3)), np.zeros((8, 3))
    inline = _threads(_runner(0.004), [fast, fast, small, big, big, slow, fast, fast])
    # first call: nothing learned (thread); then inline up to the largest fast size seen;
    # a bigger input goes to the thread once, then inline; the slow call runs inline (its
    # size was fast) and narrows the bound, so the same size goes to the thread until a
    # call of it is fast again
    assert inline == [False, True, True, False, True, True, False, True]


def test_inline_off_runs_every_call_on_the_model_thread(store_home) -> None:
    assert _threads(_runner(0.0), [np.zeros((2, 3))] * 4) == [False] * 4
