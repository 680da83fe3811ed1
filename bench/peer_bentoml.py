"""Serve the race's models with BentoML 1.4 (runs in the BentoML peer venv, via `bentoml serve`).

Started by `bench/peers.py` as ``bentoml serve peer_bentoml:RaceService`` with this folder as
the working directory; it imports nothing from the project. The environment says what to
serve (BentoML builds the service class when it imports this module, in every worker):

- ``RF_BENCH_PLAN``: the plan `bench/prepare.py` wrote (models, their exported weights);
- ``RF_BENCH_MODELS``: comma-separated subset of the plan's models;
- ``RF_BENCH_WORKERS``: BentoML workers (processes), default 1;
- ``RF_BENCH_MAX_BATCH_SIZE`` and ``RF_BENCH_MAX_LATENCY_MS``: the adaptive batching limits.

Each model is one API at ``POST /<model>`` (new-style ``@bentoml.service`` with
``@bentoml.api(batchable=True, batch_dim=0, ...)``: BentoML's adaptive batching on), body
``{"x": [[...], ...]}`` (rows of the model's input), answer the output rows as a JSON array.
The scikit-learn models are the same fitted estimators (the joblib file exported from the
store, the plan's method); the torch ones the TorchScript traces of the stored modules, run on
the CPU under ``torch.inference_mode()``. Access logs are off (a line per request costs CPU);
BentoML's own metrics stay on (``bentoml_service_adaptive_batch_size`` gives the mean batch).
Readiness: BentoML's own ``/readyz``.
"""

from __future__ import annotations

import json
import os
import pathlib

import bentoml
import numpy as np

PLAN = json.loads(pathlib.Path(os.environ["RF_BENCH_PLAN"]).read_text())
MODELS = [m for m in os.environ.get("RF_BENCH_MODELS", "").split(",") if m] or list(PLAN["models"])
WORKERS = int(os.environ.get("RF_BENCH_WORKERS", "1"))
MAX_BATCH_SIZE = int(os.environ.get("RF_BENCH_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("RF_BENCH_MAX_LATENCY_MS", "10000"))


def _load(spec: dict):
    """The model's batch function: rows in (numpy, the plan's dtype), rows out."""
    dtype = np.dtype(spec["dtype"])
    if spec["peer_kind"] == "sklearn":
        import joblib

        fn = getattr(joblib.load(spec["peer_artifact"]), spec["method"])

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(fn(np.asarray(x, dtype=dtype)))

        return run
    if spec["peer_kind"] == "torchscript":
        import torch

        module = torch.jit.load(spec["peer_artifact"], map_location="cpu").eval()

        def run_torch(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
            with torch.inference_mode():
                return module(t).numpy()

        return run_torch
    raise ValueError(f"no BentoML runtime for peer kind {spec['peer_kind']!r}")


def _api(name: str):
    def method(self, x: np.ndarray) -> np.ndarray:
        return self.fns[name](x)

    method.__name__ = method.__qualname__ = name
    method.__annotations__ = {"x": np.ndarray, "return": np.ndarray}
    return bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=MAX_BATCH_SIZE,
        max_latency_ms=MAX_LATENCY_MS,
    )(method)


def _init(self) -> None:
    self.fns = {m: _load(PLAN["models"][m]) for m in MODELS}


_ns: dict = {"__init__": _init, "__module__": __name__}
_ns.update({m: _api(m) for m in MODELS})
RaceService = bentoml.service(
    name="rf_race",
    workers=WORKERS,
    traffic={"timeout": 60, "max_concurrency": 4096},
    logging={"access": {"enabled": False}},  # no log line per request
)(type("RaceService", (), _ns))
