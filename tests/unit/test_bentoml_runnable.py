"""Custom Runnables and Runner options, as BentoML 1.x documents them, run with init_local."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
from protos.errors import FailedPrecondition, InvalidArgument
from runnerfleet.runner import Runner
from runnerfleet.sdk.runnable import Runnable


class Scaler(Runnable):
    SUPPORTED_RESOURCES = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING = False

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    @Runnable.method(batchable=True, batch_dim=0)
    def scale(self, x):
        return np.asarray(x) * self.factor

    @Runnable.method
    def describe(self):
        return f"x{self.factor}"


class Weighted(Scaler):
    @Runnable.method(batchable=True)
    def weigh(self, x, w):
        return np.asarray(x) * np.asarray(w)


def test_custom_runnable_runs_locally() -> None:
    runner = Runner(Scaler, name="scaler", runnable_init_params={"factor": 3.0})
    assert set(runner.methods) == {"scale", "describe"}
    assert runner.scale.config.batchable and runner.scale.config.batch_dim == (0, 0)
    assert not runner.describe.config.batchable
    with pytest.raises(FailedPrecondition, match="init_local"):
        runner.scale.run([1.0])
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.scale.run(np.array([1.0, 2.0])), [3.0, 6.0])
    assert asyncio.run(runner.describe.async_run()) == "x3.0"
    assert runner.models == [] and [m.name for m in runner.runner_methods] == ["scale", "describe"]
    runner.destroy()
    with pytest.raises(FailedPrecondition):
        runner.describe.run()


def test_subclass_adds_methods_and_leaves_parent_alone() -> None:
    assert set(Weighted.runnable_methods__) == {"scale", "describe", "weigh"}
    assert set(Scaler.runnable_methods__) == {"scale", "describe"}
    runner = Runner(Weighted, name="weighted")
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.weigh.run(np.ones(2), np.array([2.0, 5.0])), [2.0, 5.0])


def test_add_method() -> None:
    class Adder(Runnable):
        pass

    Adder.add_method(lambda self, x: x + 1, "inc", batchable=True, batch_dim=(0, 1))
    runner = Runner(Adder, name="adder")
    assert runner.inc.config.batch_dim == (0, 1)
    runner.init_local(quiet=True)
    assert runner.inc.run(1) == 2
    assert runner.run(1) == 2  # the only method


def test_runnable_without_methods_is_refused() -> None:
    class Empty(Runnable):
        pass

    with pytest.raises(InvalidArgument, match="has no methods"):
        Runner(Empty)


def test_batchable_arguments_must_agree_on_batch_size() -> None:
    runner = Runner(Weighted, name="weighted")
    runner.init_local(quiet=True)
    with pytest.raises(InvalidArgument, match="same batch size"):
        runner.weigh.run(np.ones(3), np.ones(2))


def test_runner_options_per_method() -> None:
    runner = Runner(
        Scaler,
        name="opts",
        max_batch_size=32,
        max_latency_ms=50,
        method_configs={"scale": {"max_batch_size": 8}},
    )
    assert runner.scale.max_batch_size == 8 and runner.scale.max_latency_ms == 50.0
    assert runner.describe.max_batch_size == 32
    assert Runner(Scaler, name="plain").scale.max_batch_size is None  # the worker's flag
    with pytest.raises(InvalidArgument, match="does not have"):
        Runner(Scaler, name="bad", method_configs={"nope": {"max_batch_size": 1}})
    with pytest.raises(InvalidArgument, match="unknown keys"):
        Runner(Scaler, name="bad", method_configs={"scale": {"batch": 1}})
    with pytest.raises(InvalidArgument, match="max_batch_size"):
        Runner(Scaler, name="bad", max_batch_size=0)


def test_upper_case_runner_name_is_lowered_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        runner = Runner(Scaler, name="MyScaler")
    assert runner.name == "myscaler"
    assert "lowercase" in caplog.text
    assert Runner(Scaler).name == "scaler"  # the class name, lowered


def test_init_local_warns_unless_quiet(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        Runner(Scaler, name="q").init_local(quiet=True)
    assert "init_local" not in caplog.text
    with caplog.at_level(logging.WARNING):
        Runner(Scaler, name="loud").init_local()
    assert "init_local" in caplog.text


@pytest.fixture()
def iris(store_home):
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    model = runnerfleet.sklearn.save_model(
        "iris_clf", clf, signatures={"predict": {"batchable": True}, "predict_proba": {}}
    )
    return model, clf, x


def test_to_runnable_can_be_subclassed(iris) -> None:
    model, clf, x = iris

    class Clipped(model.to_runnable()):
        def predict(self, data):  # overrides keep the signature's batchable config
            return np.minimum(self.model.predict(data), 1)

        @Runnable.method(batchable=True)
        def classes(self, data):
            return self.model.predict_proba(data).argmax(axis=1)

    runner = Runner(Clipped, name="clipped", models=[model])
    assert runner.predict.config.batchable and runner.models == [model]
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.predict.run(x), np.minimum(clf.predict(x), 1))
    np.testing.assert_array_equal(runner.classes.run(x), clf.predict(x))
    np.testing.assert_array_equal(runner.run(x), np.minimum(clf.predict(x), 1))


def test_to_runner_options_and_models(iris) -> None:
    model, _, _ = iris
    runner = model.to_runner(
        name="iris_fast", max_batch_size=16, method_configs={"predict": {"max_latency_ms": 5}}
    )
    assert runner.name == "iris_fast" and runner.models == [model]
    assert runner.predict.max_batch_size == 16 and runner.predict.max_latency_ms == 5.0
    assert runner.predict_proba.max_latency_ms is None
    assert runner.address == (model.tag.name, model.tag.version)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


def test_torch_runner_answers_tensors(store_home) -> None:
    model = runnerfleet.pytorch.save_model(
        "net", Net(), signatures={"__call__": {"batchable": True}}
    )
    runner = runnerfleet.pytorch.get("net").to_runner()
    runner.init_local(quiet=True)
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    out = runner.run(x)  # numpy in
    assert isinstance(out, torch.Tensor) and out.shape == (5, 3)
    assert out.argmax(dim=1).shape == (5,)
    expected = Net()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected, rtol=1e-5)
    assert isinstance(runner.run(torch.from_numpy(x)), torch.Tensor)  # tensors in
    assert model.to_runnable().SUPPORTED_RESOURCES == ("cpu", "nvidia.com/gpu")


def test_torch_runner_tensors_from_any_backend(store_home) -> None:
    """A backend answering numpy (as the remote one does) still gives torch tensors."""
    runnerfleet.pytorch.save_model("net", Net(), signatures={"__call__": {"batchable": True}})
    runner = runnerfleet.models.get("net").to_runner()

    class NumpyBackend:
        def call(self, r, method, args, kwargs):
            out = np.frombuffer(np.arange(6, dtype=np.float32).tobytes(), np.float32)
            return out.reshape(2, 3)  # read-only, like the codec's zero-copy arrays

        async def async_call(self, r, method, args, kwargs):
            return self.call(r, method, args, kwargs)

    runner.bind(NumpyBackend())
    out = runner.run(np.zeros((2, 4), np.float32))
    assert isinstance(out, torch.Tensor) and out.argmax(dim=1).tolist() == [2, 2]
    assert isinstance(asyncio.run(runner.async_run(np.zeros((2, 4)))), torch.Tensor)
