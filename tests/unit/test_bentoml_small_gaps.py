"""BentoML 1.x behaviours of the SDK and store that the parity check found missing (issue 12)."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
from protos.errors import InvalidArgument, NotFound


@pytest.fixture
def iris(store_home):
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    return runnerfleet.sklearn.save_model("iris_clf", clf), clf, x


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


def test_top_level_names():
    assert runnerfleet.__version__
    assert isinstance(runnerfleet.__version__, str)
    assert runnerfleet.Model is runnerfleet.types.Model
    assert issubclass(runnerfleet.exceptions.NotFound, runnerfleet.exceptions.BentoMLException)
    assert issubclass(runnerfleet.exceptions.NotFound, runnerfleet.exceptions.RunnerFleetException)
    assert runnerfleet.types.ModelSignature(batchable=True).batchable
    for name in ("torchscript", "picklable_model"):
        module = getattr(runnerfleet, name)
        assert {"save_model", "load_model", "get"} <= set(module.__all__)


def test_import_stays_light():
    code = (
        "import sys, runnerfleet; "
        "print([m for m in ('grpc', 'torch', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_info_api_version_and_context(iris):
    model, _, _ = iris
    info = runnerfleet.models.get(model.tag).info
    assert info.api_version == "v1"
    assert info.context.framework_name == "sklearn"
    assert set(info.context.framework_versions) == {"scikit-learn"}
    assert info.context.python_version.count(".") == 2
    assert info.context["framework"] == "sklearn"  # still a dict


def test_model_hashable_equal_by_tag_and_with_options(iris):
    model, _, _ = iris
    again = runnerfleet.models.get(str(model.tag))
    assert again == model
    assert hash(again) == hash(model)
    assert len({model, again}) == 1
    tuned = model.with_options(partial_kwargs={"predict": {"x": 1}})
    assert tuned.info.options == {"partial_kwargs": {"predict": {"x": 1}}}
    assert runnerfleet.models.get(model.tag).info.options == {}  # stored version unchanged


def test_upper_case_names_lowered_with_warning(store_home, caplog):
    with caplog.at_level(logging.WARNING):
        saved = runnerfleet.pytorch.save_model("MyNet", Net())
    assert saved.tag.name == "mynet"
    assert "lowercase" in caplog.text
    assert runnerfleet.models.get("MyNet:latest").tag == saved.tag
    assert runnerfleet.Tag("ABC", "V1") == runnerfleet.Tag("abc", "v1")


def test_labels_coerced_and_nan_metadata_kept(store_home):
    saved = runnerfleet.pytorch.save_model(
        "net",
        Net(),
        labels={"epochs": 3, "ok": True},
        metadata={"loss": float("nan"), "best": float("inf"), "worst": -math.inf},
    )
    info = runnerfleet.models.get(saved.tag).info
    assert info.labels == {"epochs": "3", "ok": "True"}
    assert math.isnan(info.metadata["loss"])
    assert info.metadata["best"] == math.inf
    assert info.metadata["worst"] == -math.inf


def test_get_of_another_framework_is_not_found(store_home):
    runnerfleet.pytorch.save_model("net", Net())
    with pytest.raises(NotFound, match="runnerfleet.pytorch"):
        runnerfleet.sklearn.get("net")
    with pytest.raises(NotFound):
        runnerfleet.sklearn.load_model(runnerfleet.models.get("net"))


def test_load_model_device_id(store_home):
    runnerfleet.pytorch.save_model("net", Net())
    module = runnerfleet.pytorch.load_model("net", device_id="cpu")
    assert next(module.parameters()).device.type == "cpu"


def test_models_list_by_tag_newest_first(store_home):
    first = runnerfleet.pytorch.save_model("net", Net())
    second = runnerfleet.pytorch.save_model("net", Net())
    assert [m.tag for m in runnerfleet.models.list(f"net:{first.tag.version}")] == [first.tag]
    assert runnerfleet.models.list("net:nosuchversion") == []
    assert {m.tag for m in runnerfleet.models.list("net")} == {first.tag, second.tag}
    assert [m.tag for m in runnerfleet.models.list("net:latest")] == [second.tag]


def test_models_create(store_home):
    with (
        runnerfleet.models.create("handmade", labels={"k": 1}, options={"o": 2}) as draft,
        open(draft.path_of("weights.txt"), "w") as f,
    ):
        f.write("0.5")
    model = runnerfleet.models.get("handmade")
    assert model.tag == draft.tag
    assert model.info.labels == {"k": "1"}
    assert model.info.options == {"module": "files", "o": 2}
    with open(model.path_of("weights.txt")) as f:
        assert f.read() == "0.5"


def test_export_bare_path_formats_and_reimport(iris, tmp_path):
    model, clf, x = iris
    bare = runnerfleet.models.export_model(model.tag, str(tmp_path / "iris"))
    assert bare == str(tmp_path / "iris.rfmodel")
    assert os.path.isfile(bare)
    gz = runnerfleet.models.export_model(model.tag, str(tmp_path / "iris"), output_format="gz")
    assert gz.endswith(".rfmodel.gz")
    with open(gz, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    folder = runnerfleet.models.export_model(model.tag, str(tmp_path / "dir"), "folder")
    assert {"info.json", "manifest.json", "model.joblib"} <= set(os.listdir(folder))
    with pytest.raises(InvalidArgument, match="output_format"):
        runnerfleet.models.export_model(model.tag, str(tmp_path / "x"), "rar")
    runnerfleet.models.delete(model.tag)
    assert runnerfleet.models.import_model(gz).tag == model.tag  # compressed archives import
    runner = runnerfleet.models.get(model.tag).to_runner()
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.run(x), clf.predict(x))


def test_torchscript_module(store_home):
    scripted = torch.jit.script(Net())
    saved = runnerfleet.torchscript.save_model("scripted", scripted)
    assert saved.info.module == "torchscript"
    loaded = runnerfleet.torchscript.load_model("scripted")
    x = torch.ones(1, 2)
    assert torch.allclose(loaded(x), scripted(x))
    runner = runnerfleet.torchscript.get("scripted").to_runner()
    runner.init_local(quiet=True)
    assert isinstance(runner.run(np.ones((1, 2), np.float32)), torch.Tensor)
    with pytest.raises(InvalidArgument, match="ScriptModule"):
        runnerfleet.torchscript.save_model("eager", Net())


def test_picklable_model(store_home):
    class Doubler:  # defined here: cloudpickle saves it by value
        def predict(self, x):
            return np.asarray(x) * 2

    runnerfleet.picklable_model.save_model(
        "doubler", Doubler(), signatures={"predict": {"batchable": True}}
    )
    assert runnerfleet.picklable_model.load_model("doubler").predict([1]).tolist() == [2]
    runner = runnerfleet.picklable_model.get("doubler").to_runner()
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.predict.run(np.array([1, 2])), [2, 4])


def test_user_metrics_registry():
    from prometheus_client import CollectorRegistry, generate_latest

    counter = runnerfleet.metrics.Counter("rf_test_events_total", "events", ["kind"])
    counter.labels("a").inc(3)
    again = runnerfleet.metrics.Counter("rf_test_events_total", "events", ["kind"])
    assert again is counter  # a module imported twice gets the same metric
    with pytest.raises(InvalidArgument, match="already exists as a Counter"):
        runnerfleet.metrics.Gauge("rf_test_events_total", "events", ["kind"])
    process = CollectorRegistry()
    runnerfleet.metrics.export_into(process)
    assert b'rf_test_events_total{kind="a"} 3.0' in generate_latest(process)
