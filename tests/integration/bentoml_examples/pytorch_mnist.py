"""BentoML 1.x pytorch example's ``service.py`` (runner answers torch tensors), renamed."""

import numpy as np

import runnerfleet
from runnerfleet.io import NumpyNdarray

mnist_runner = runnerfleet.pytorch.get("pytorch_mnist:latest").to_runner()

svc = runnerfleet.Service(name="pytorch_mnist_demo", runners=[mnist_runner])


@svc.api(
    input=NumpyNdarray(dtype="float32", enforce_dtype=True), output=NumpyNdarray(dtype="int64")
)
async def predict_ndarray(inp: np.ndarray) -> np.ndarray:
    assert inp.shape[1:] == (1, 8, 8)
    output_tensor = await mnist_runner.async_run(inp)
    return output_tensor.argmax(dim=1).detach().cpu().numpy()


@svc.api(input=NumpyNdarray(dtype="float32"), output=NumpyNdarray(dtype="int64"))
def predict_sync(inp: np.ndarray) -> np.ndarray:
    return mnist_runner.run(inp).argmax(dim=1).numpy()
