"""A Service using every IO descriptor, a Context, lifecycle hooks and a custom runner.

Loaded by the gateway (``--service``) and by a worker (``worker --service``) in
``test_bentoml_io_gateway.py``. ``RF_TEST_HOOK_FILE`` names a file the hooks append to.
"""

from __future__ import annotations

import os

import numpy as np
from pydantic import BaseModel

import runnerfleet
from runnerfleet.io import (
    JSON,
    File,
    Image,
    Multipart,
    NumpyNdarray,
    PandasDataFrame,
    PandasSeries,
    Text,
)


class Order(BaseModel):
    item: str
    price: float
    quantity: int


class RowSum(runnerfleet.Runnable):
    SUPPORTED_RESOURCES = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING = False

    @runnerfleet.Runnable.method(batchable=True)
    def row_sum(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).sum(axis=1)


row_sum_runner = runnerfleet.Runner(RowSum, name="row_sum")
svc = runnerfleet.Service("io_service", runners=[row_sum_runner])


def _log(event: str) -> None:
    path = os.environ.get("RF_TEST_HOOK_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(event + "\n")


@svc.on_deployment
def deployed() -> None:
    _log("deployment")


@svc.on_startup
async def started(ctx: runnerfleet.Context) -> None:
    ctx.state["greeting"] = "hello"
    _log("startup")


@svc.on_shutdown
def stopped(ctx: runnerfleet.Context) -> None:
    _log(f"shutdown {ctx.state.get('greeting')}")


@svc.api(input=JSON(pydantic_model=Order), output=JSON())
def total(order: Order) -> dict:
    return {"item": order.item, "total": order.price * order.quantity}


@svc.api(input=Text(), output=Text())
def shout(text: str, ctx: runnerfleet.Context) -> str:
    ctx.response.headers["x-length"] = str(len(text))
    suffix = ctx.request.headers.get("suffix", "")
    return f"{ctx.state['greeting']} {text.upper()}{suffix}"


@svc.api(input=PandasDataFrame(), output=PandasSeries())
async def frame_sum(frame):
    return await row_sum_runner.row_sum.async_run(frame.to_numpy(dtype=np.float64))


@svc.api(input=Image(), output=Image())
def mirror(image):
    from PIL import ImageOps

    return ImageOps.mirror(image)


@svc.api(input=File(), output=JSON())
def file_size(f) -> dict:
    return {"bytes": len(f.read())}


@svc.api(input=Multipart(note=Text(), values=NumpyNdarray(dtype="float32")), output=JSON())
def annotate(note: str, values: np.ndarray) -> dict:
    return {"note": note, "sum": float(row_sum_runner.row_sum.run(values[None, :])[0])}


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def gone(x: np.ndarray, ctx: runnerfleet.Context) -> np.ndarray:
    ctx.response.status_code = 404
    return x
