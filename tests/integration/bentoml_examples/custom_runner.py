"""BentoML's custom-runner example: a Runnable with a batchable method and init parameters.

From BentoML 1.x's "Custom Runner" guide, with ``runnerfleet`` in place of ``bentoml`` and a
word-list scorer in place of NLTK's VADER (no download at test time).
"""

from __future__ import annotations

import numpy as np

import runnerfleet
from runnerfleet.io import NumpyNdarray

# a custom metric (bentoml.metrics style): the worker hosting the runner exports it
rows_scored = runnerfleet.metrics.Counter(
    "polarity_rows_scored_total", "Rows the polarity runnable scored", ["outcome"]
)


class PolarityRunnable(runnerfleet.Runnable):
    SUPPORTED_RESOURCES = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING = False

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.calls = 0

    @runnerfleet.Runnable.method(batchable=True, batch_dim=0)
    def is_positive(self, scores: np.ndarray) -> np.ndarray:
        self.calls += 1
        positive = (np.asarray(scores).mean(axis=1) > self.threshold).astype(np.int64)
        rows_scored.labels("positive").inc(int(positive.sum()))
        rows_scored.labels("negative").inc(int(len(positive) - positive.sum()))
        return positive

    @runnerfleet.Runnable.method(batchable=False)
    def stats(self, _: np.ndarray) -> np.ndarray:
        return np.array([self.calls], dtype=np.int64)


polarity_runner = runnerfleet.Runner(
    PolarityRunnable,
    name="polarity_runner",
    runnable_init_params={"threshold": 0.5},
    max_batch_size=16,
    max_latency_ms=2000,
    method_configs={"is_positive": {"max_batch_size": 8}},
)
svc = runnerfleet.Service("polarity_service", runners=[polarity_runner])


@svc.api(input=NumpyNdarray(dtype="float32"), output=NumpyNdarray())
def analysis(scores: np.ndarray) -> np.ndarray:
    return polarity_runner.is_positive.run(scores)
