"""`.bentomodel` archives (BentoML 1.x layout) import as verified RunnerFleet versions.

These archives are built here the way BentoML 1.x writes them (model.yaml, saved_model.pkl by
joblib, saved_model.pt by torch.save with cloudpickle, custom_objects.pkl by cloudpickle); the
slow test in tests/integration/test_bentoml_real_import.py uses archives a real bentoml made.
"""

from __future__ import annotations

import io
import tarfile

import cloudpickle
import joblib
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
from protos.errors import InvalidArgument
from runnerfleet.cli import cli

VERSION = "abcdefghijklmnop"


def _model_yaml(name: str, module: str, framework: dict, signatures: dict) -> bytes:
    return yaml.safe_dump(
        {
            "name": name,
            "version": VERSION,
            "module": module,
            "labels": {"owner": "team", "epochs": 3},
            "options": {},
            "metadata": {"acc": 0.97},
            "context": {
                "framework_name": list(framework)[0],
                "framework_versions": framework,
                "bentoml_version": "1.4.0",
                "python_version": "3.11.9",
            },
            "signatures": signatures,
            "api_version": "v1",
            "creation_time": "2025-01-02T03:04:05.000006+00:00",
        }
    ).encode()


def _write(path, files: dict[str, bytes], mode: str = "w:gz", prefix: str = "") -> str:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(prefix + name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return str(path)


def _pickled_joblib(obj) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


@pytest.fixture
def iris():
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y), x


def test_sklearn_bentomodel(store_home, tmp_path, iris):
    clf, x = iris
    path = _write(
        tmp_path / "iris_clf.bentomodel",
        {
            "model.yaml": _model_yaml(
                "iris_clf",
                "bentoml.sklearn",
                {"scikit-learn": "1.5.2"},
                {"predict": {"batchable": True, "batch_dim": 0}, "predict_proba": {}},
            ),
            "saved_model.pkl": _pickled_joblib(clf),
            "custom_objects.pkl": cloudpickle.dumps({"scale": lambda v: v * 2}),
        },
    )
    model = runnerfleet.models.import_model(path)
    assert str(model.tag) == f"iris_clf:{VERSION}"
    assert model.info.module == "sklearn"
    assert model.info.labels == {"owner": "team", "epochs": "3"}
    assert model.info.metadata == {"acc": 0.97}
    assert model.info.signatures["predict"].batchable
    assert model.info.context.framework_versions == {"scikit-learn": "1.5.2"}
    assert model.info.context["bentoml_version"] == "1.4.0"
    assert model.custom_objects["scale"](2) == 4
    runner = runnerfleet.sklearn.get(str(model.tag)).to_runner()
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.predict.run(x), clf.predict(x))
    again = CliRunner().invoke(cli, ["models", "import", path])
    assert again.exit_code == 0, again.output
    assert "identical: nothing imported" in again.output, again.output


def test_pytorch_bentomodel_in_a_folder_and_uncompressed(store_home, tmp_path):
    net = Net()
    buffer = io.BytesIO()
    torch.save(net, buffer, pickle_module=cloudpickle)
    path = _write(
        tmp_path / "net.tar",
        {
            "model.yaml": _model_yaml(
                "net", "bentoml.pytorch", {"torch": "2.5.0"}, {"__call__": {"batchable": True}}
            ),
            "saved_model.pt": buffer.getvalue(),
        },
        mode="w",
        prefix="net/",
    )
    result = CliRunner().invoke(cli, ["models", "import", path])
    assert result.exit_code == 0, result.output
    runner = runnerfleet.pytorch.get(f"net:{VERSION}").to_runner()
    runner.init_local(quiet=True)
    x = torch.ones(2, 4)
    assert torch.allclose(runner.run(x), net(x))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"model.yaml": _model_yaml("m", "bentoml.xgboost", {"xgboost": "2"}, {"predict": {}})},
         "cannot be imported"),
        ({"model.yaml": _model_yaml("m", "bentoml.sklearn", {"scikit-learn": "1"}, {"p": {}})},
         "without its saved_model.pkl"),
        ({"model.yaml": b"- a list"}, "not a mapping"),
        ({"../evil": b"x", "model.yaml": b"{}"}, "escapes its folder"),
        ({"a/model.yaml": b"{}", "b/model.yaml": b"{}"}, "expected one model.yaml"),
    ],
)  # fmt: skip
def test_bad_bentomodels_are_refused(store_home, tmp_path, files, message):
    path = _write(tmp_path / "bad.bentomodel", files)
    with pytest.raises(InvalidArgument, match=message):
        runnerfleet.models.import_model(path)
    assert runnerfleet.models.list() == []
