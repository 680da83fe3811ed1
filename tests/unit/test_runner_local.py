"""Runners: to_runner, init_local, method.run/async_run, run = __call__, bind, batch_dim."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
from protos.errors import FailedPrecondition, InvalidArgument
from runnerfleet.runner import LocalBackend, Runner


@pytest.fixture()
def iris_runner(store_home):
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    runnerfleet.sklearn.save_model(
        "iris_clf", clf, signatures={"predict": {"batchable": True}, "predict_proba": {}}
    )
    return runnerfleet.models.get("iris_clf:latest").to_runner(), clf, x


def test_run_methods_locally(iris_runner):
    runner, clf, x = iris_runner
    assert runner.name == "iris_clf" and set(runner.methods) == {"predict", "predict_proba"}
    with pytest.raises(FailedPrecondition, match="init_local"):
        runner.predict.run(x)
    runner.init_local()
    np.testing.assert_array_equal(runner.predict.run(x), clf.predict(x))
    np.testing.assert_allclose(runner.predict_proba.run(x[:3]), clf.predict_proba(x[:3]))
    out = asyncio.run(runner.predict.async_run(x[:4]))
    np.testing.assert_array_equal(out, clf.predict(x[:4]))
    np.testing.assert_array_equal(runner.run(x), clf.predict(x))  # BentoML: run = predict
    with pytest.raises(AttributeError, match="no method 'transform'"):
        runner.transform  # noqa: B018


def test_bind_routes_calls_to_backend(iris_runner):
    runner, _, x = iris_runner
    calls = []

    class Recording:
        def call(self, r, method, args, kwargs):
            calls.append((r, method, args, kwargs))
            return "remote"

        async def async_call(self, r, method, args, kwargs):
            return self.call(r, method, args, kwargs)

    runner.bind(Recording())
    assert runner.predict.run(x[:1], flag=True) == "remote"
    assert asyncio.run(runner.predict_proba.async_run(x[:1])) == "remote"
    assert [(c[0], c[1], c[3]) for c in calls] == [
        (runner, "predict", {"flag": True}),
        (runner, "predict_proba", {}),
    ]


class Mix(torch.nn.Module):
    """Mixes features across the batch axis 1: (features, batch) -> (outputs, batch)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return self.weight @ x


def test_call_binds_to_run_and_batch_dim_1_semantics(store_home):
    sample = np.ones((4, 2), dtype=np.float32)
    m = runnerfleet.pytorch.save_model(
        "mix",
        Mix(),
        signatures={"__call__": {"batchable": True, "batch_dim": 1}},
        sample_input=sample,
    )
    sig = m.info.signatures["__call__"]
    assert sig.batch_dim == (1, 1)
    assert sig.input_spec[0].shape == (4, -1) and sig.output_spec[0].shape == (3, -1)
    runner = m.to_runner()
    runner.init_local()
    rng = np.random.default_rng(0)
    a = rng.random((4, 2), dtype=np.float32)
    b = rng.random((4, 5), dtype=np.float32)
    # What a batcher does with batch_dim 1: concatenate along axis 1, split the output there.
    joined = runner.run(np.concatenate([a, b], axis=1))
    np.testing.assert_allclose(joined[:, :2], runner.run(a), rtol=1e-5)
    np.testing.assert_allclose(joined[:, 2:], runner.__call__.run(b), rtol=1e-5)
    assert asyncio.run(runner.async_run(a)).shape == (3, 2)


class Transpose(torch.nn.Module):
    def forward(self, x):
        return x.T


def test_batch_dim_pair(store_home):
    sample = np.zeros((2, 3), dtype=np.float32)
    m = runnerfleet.pytorch.save_model(
        "t",
        Transpose(),
        signatures={"__call__": {"batchable": True, "batch_dim": (0, 1)}},
        sample_input=sample,
    )
    sig = m.info.signatures["__call__"]
    assert sig.batch_dim == (0, 1)
    assert sig.input_spec[0].shape == (-1, 3) and sig.output_spec[0].shape == (3, -1)


def test_local_backend_is_a_runner_backend(iris_runner):
    runner, clf, x = iris_runner
    backend = LocalBackend.load(runner.model)
    other = Runner(runner.model, name="second")
    other.bind(backend)
    np.testing.assert_array_equal(other.predict.run(x[:2]), clf.predict(x[:2]))


def test_local_module_class_saves_by_value(store_home):
    class Local(torch.nn.Module):  # not importable by name: cloudpickle writes it by value
        def forward(self, x):
            return x + 1

    runnerfleet.pytorch.save_model("local", Local())
    loaded = runnerfleet.pytorch.load_model("local")
    assert torch.equal(loaded(torch.zeros(2)), torch.ones(2))


def test_unpicklable_module_is_a_clear_error(store_home):
    import threading

    module = torch.nn.Identity()
    module.lock = threading.Lock()  # no pickler can write a lock
    with pytest.raises(InvalidArgument, match="external_modules"):
        runnerfleet.pytorch.save_model("locked", module)
    assert runnerfleet.models.list() == []
