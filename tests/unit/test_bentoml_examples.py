"""DESIGN.md section 2's example, top to bottom, with `runnerfleet` in place of `bentoml`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet


class DemoMnist(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def test_design_example(store_home, tmp_path):
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    tokenizer = {"vocab": ["a", "b"]}
    runnerfleet.sklearn.save_model(
        "iris_clf",
        clf,
        labels={"owner": "team"},
        metadata={"acc": 0.97},
        custom_objects={"tokenizer": tokenizer},
        signatures={"predict": {"batchable": True, "batch_dim": 0}},
    )
    runnerfleet.pytorch.save_model(
        "demo_mnist", DemoMnist(), signatures={"__call__": {"batchable": True}}
    )
    model = runnerfleet.sklearn.load_model("iris_clf:latest")
    assert isinstance(model, LogisticRegression)
    m = runnerfleet.models.get("iris_clf:latest")
    assert m.tag.name == "iris_clf"
    assert m.path.startswith(str(store_home))
    assert m.custom_objects == {"tokenizer": tokenizer}
    assert m.info.metadata == {"acc": 0.97}
    assert m.info.labels == {"owner": "team"}
    runner = m.to_runner()
    runner.init_local()
    np.testing.assert_array_equal(runner.predict.run(x), clf.predict(x))
    mnist = runnerfleet.models.get("demo_mnist").to_runner()
    mnist.init_local()
    assert mnist.run(np.ones((3, 4), dtype=np.float32)).shape == (3, 2)  # run = __call__
    assert {t.tag.name for t in runnerfleet.models.list()} == {"iris_clf", "demo_mnist"}

    path = runnerfleet.models.export_model("iris_clf:latest", str(tmp_path / "iris.rfmodel"))
    runnerfleet.models.delete("iris_clf:latest")
    assert runnerfleet.models.list("iris_clf") == []
    assert runnerfleet.models.import_model(path).tag == m.tag

    service = pytest.importorskip("runnerfleet.service", reason="Service not built yet")
    svc = runnerfleet.Service("iris_classifier", runners=[runner])
    assert isinstance(svc, service.Service)

    @svc.api(input=runnerfleet.io.NumpyNdarray(), output=runnerfleet.io.NumpyNdarray())
    def classify(arr):
        return runner.predict.run(arr)

    assert "classify" in svc.apis
    np.testing.assert_array_equal(classify(x[:3]), clf.predict(x[:3]))
