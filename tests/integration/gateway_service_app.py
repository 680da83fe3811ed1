"""A Service the gateway tests load with `--service tests.integration.gateway_service_app:svc`."""

from __future__ import annotations

import numpy as np

import runnerfleet
from runnerfleet.io import NumpyNdarray

iris = runnerfleet.models.get("iris_clf:latest").to_runner()
echo = runnerfleet.models.get("echo:latest").to_runner()
svc = runnerfleet.Service("iris_service", runners=[iris, echo])


@svc.api(
    input=NumpyNdarray(dtype="float64", shape=(-1, 4), enforce_shape=True), output=NumpyNdarray()
)
def classify(x: np.ndarray) -> np.ndarray:
    """Sync API: runs in a thread; the blocking runner call goes to a worker."""
    return iris.predict.run(x)


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 4)), output=NumpyNdarray(dtype="float32"))
async def classify_proba(x: np.ndarray) -> np.ndarray:
    """Async API: awaits the runner on the gateway's loop."""
    return await iris.predict_proba.async_run(x)


@svc.api(input=NumpyNdarray(dtype="float32", enforce_dtype=True), output=NumpyNdarray())
async def double_echo(x: np.ndarray) -> np.ndarray:
    """Two runners' worth of logic: echo on a worker, then double here."""
    return (await echo.async_run(x)) * 2


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def broken(x: np.ndarray) -> np.ndarray:
    """A bug in user code."""
    raise ValueError("user code failed on purpose")
