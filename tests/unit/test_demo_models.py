"""The demo models: saved with concrete specs and runnable through local runners."""

from __future__ import annotations

import numpy as np

import runnerfleet
import store
from runnerfleet import demo_models


def test_iris_and_digits_and_echo(store_home):
    iris_tag = demo_models.save_iris()
    iris = runnerfleet.models.get(iris_tag)
    assert set(iris.info.signatures) == {"predict", "predict_proba"}
    for sig in iris.info.signatures.values():
        assert sig.batchable and sig.input_spec[0].shape == (-1, 4)
        assert sig.input_spec[0].dtype == "float64"
    x, y = demo_models.iris_data()
    runner = iris.to_runner()
    runner.init_local()
    assert (runner.predict.run(x) == y).mean() > 0.9

    digits = runnerfleet.models.get(demo_models.save_digits_torch())
    sig = digits.info.signatures["__call__"]
    assert sig.batchable and sig.batch_dim == (0, 0)
    assert sig.input_spec == [store.TensorSpec("input__0", "float32", (-1, 64))]
    assert sig.output_spec == [store.TensorSpec("output__0", "float32", (-1, 10))]
    dx, dy = demo_models.digits_data()
    runner = digits.to_runner()
    runner.init_local()
    assert (runner.run(dx).argmax(dim=1).numpy() == dy).mean() > 0.9  # a torch tensor

    echo = runnerfleet.models.get(demo_models.save_echo())
    assert echo.info.signatures["__call__"].input_spec[0].shape == (-1, -1)
    runnable = echo.load_runnable()
    payload = np.random.default_rng(0).random((3, 1000), dtype=np.float32)
    np.testing.assert_array_equal(runnable.methods["__call__"](payload), payload)


def test_heavy_mlp_is_float32_and_deterministic(store_home):
    first = store.get(demo_models.save_heavy_mlp())
    second = store.get(demo_models.save_heavy_mlp())
    sig = first.info.signatures["__call__"]
    assert sig.input_spec == [store.TensorSpec("input__0", "float32", (-1, 64))]
    assert sig.output_spec == [store.TensorSpec("output__0", "float32", (-1, 10))]
    module = first.load_model()
    shapes = [tuple(p.shape) for p in module.parameters()]
    assert shapes == [(4096, 64), (4096,), (4096, 4096), (4096,), (10, 4096), (10,)]
    assert all(p.dtype.is_floating_point and p.element_size() == 4 for p in module.parameters())
    x = np.ones((2, 64), dtype=np.float32)
    np.testing.assert_array_equal(
        first.load_runnable().methods["__call__"](x), second.load_runnable().methods["__call__"](x)
    )
