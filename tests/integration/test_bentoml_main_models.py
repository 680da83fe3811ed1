"""Models defined in ``__main__`` (a training script) save by value and load in other processes.

A script run as ``python train.py`` defines a torch module, a scikit-learn estimator and a
custom-object lambda in ``__main__``, and one class in a helper module that only the script can
import (``external_modules=``). This test process (whose ``__main__`` is pytest) and a worker
process load and run them: with plain pickle both would fail with ``Can't get attribute``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.support import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HELPER = """
import torch

class Doubler(torch.nn.Module):
    def forward(self, x):
        return x * 2
"""

TRAIN = """
import sys
import numpy as np
import torch
from sklearn.base import BaseEstimator
import runnerfleet

sys.path.insert(0, sys.argv[1])
import rf_private_helper  # importable only from this script's folder


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        torch.nn.init.constant_(self.fc.weight, 0.5)
        torch.nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class MeanThreshold(BaseEstimator):
    def fit(self, x, y=None):
        self.mean_ = float(np.mean(x))
        return self

    def predict(self, x):
        return (np.asarray(x).mean(axis=1) > self.mean_).astype(np.int64)


runnerfleet.pytorch.save_model(
    "main_net", Net(), signatures={"__call__": {"batchable": True}},
    custom_objects={"post": lambda a: a + 1}, sample_input=np.ones((2, 4), np.float32),
)
runnerfleet.sklearn.save_model(
    "main_est", MeanThreshold().fit(np.arange(8.0).reshape(2, 4)),
    signatures={"predict": {"batchable": True}},
)
runnerfleet.pytorch.save_model(
    "ext_doubler", rf_private_helper.Doubler(), external_modules=[rf_private_helper],
)
"""


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A store filled by a training script run as ``__main__`` in its own process."""
    root = tmp_path_factory.mktemp("train")
    home = root / "rfhome"
    home.mkdir()
    helper_dir = root / "private"
    helper_dir.mkdir()
    (helper_dir / "rf_private_helper.py").write_text(textwrap.dedent(HELPER))
    script = root / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    env = dict(os.environ, RUNNERFLEET_HOME=str(home), PYTHONPATH=str(procs.REPO_ROOT))
    done = subprocess.run(
        [sys.executable, str(script), str(helper_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.fixture()
def trained(trained_store: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("RUNNERFLEET_HOME", str(trained_store))
    return trained_store


def test_torch_module_from_main_loads_here(trained: pathlib.Path) -> None:
    import torch

    import runnerfleet

    net = runnerfleet.pytorch.load_model("main_net")
    out = net(torch.ones(2, 4))
    np.testing.assert_allclose(out.detach().numpy(), np.full((2, 3), 2.0))
    post = runnerfleet.models.get("main_net").custom_objects["post"]
    assert post(1) == 2  # a lambda from __main__, by value


def test_sklearn_estimator_from_main_loads_here(trained: pathlib.Path) -> None:
    import runnerfleet

    runner = runnerfleet.sklearn.get("main_est").to_runner()
    runner.init_local()
    x = np.array([[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
    np.testing.assert_array_equal(runner.predict.run(x), [0, 1])


def test_external_module_travels_by_value(trained: pathlib.Path) -> None:
    import torch

    import runnerfleet

    assert "rf_private_helper" not in sys.modules
    doubler = runnerfleet.pytorch.load_model("ext_doubler")
    assert torch.equal(doubler(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]))


def test_external_modules_must_be_modules(store_home: pathlib.Path) -> None:
    import torch

    import runnerfleet
    from protos.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="external_modules must hold imported modules"):
        runnerfleet.pytorch.save_model(
            "bad", torch.nn.Identity(), external_modules=["not-a-module"]
        )


def test_worker_serves_models_from_main(trained: pathlib.Path) -> None:
    from runnerfleet.client import Client

    worker = procs.start_worker("main_net,main_est", trained, max_latency_ms=60_000)
    try:
        procs.wait_serving(worker.address, 120)
        with Client(worker.address, timeout_s=60) as client:
            out = client.infer("main_net", np.ones((3, 4), np.float32))
            np.testing.assert_allclose(out, np.full((3, 3), 2.0))
            x = np.array([[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
            np.testing.assert_array_equal(client.infer("main_est", x), [0, 1])
    finally:
        assert procs.stop(worker) == 0, worker.log[-3000:]
