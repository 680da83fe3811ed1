"""Archives exported by a real BentoML 1.4 (sklearn and pytorch) import and run here.

The set-up makes a virtual environment with ``bentoml`` under ``.cache/bentoml-venv``
(gitignored; never the shared ``.venv``), runs a training script there that saves with
``bentoml.sklearn`` / ``bentoml.pytorch`` (a torch class defined in ``__main__``) and exports
``.bentomodel`` files, then imports them with ``runnerfleet models import`` and checks the
answers against BentoML's own. Skipped, with the reason, when that venv cannot be made.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import runnerfleet
from runnerfleet.cli import cli
from tests.support.bentoml_venv import ensure_bentoml_venv
from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

SCRIPT = """
import json, sys
import numpy as np
import torch
import bentoml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
x, y = load_iris(return_X_y=True)
clf = LogisticRegression(max_iter=1000).fit(x, y)
sk = bentoml.sklearn.save_model(
    "iris_clf", clf, labels={"owner": "team"}, metadata={"acc": 0.97},
    custom_objects={"classes": ["setosa", "versicolor", "virginica"]},
    signatures={"predict": {"batchable": True, "batch_dim": 0}, "predict_proba": {}},
)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, t):
        return self.fc(t)


net = Net()
pt = bentoml.pytorch.save_model("iris_net", net, signatures={"__call__": {"batchable": True}})
sk_path = bentoml.models.export_model(str(sk.tag), out + "/iris_clf.bentomodel")
pt_path = bentoml.models.export_model(str(pt.tag), out + "/iris_net.bentomodel")
with torch.no_grad():
    net_out = net(torch.tensor(x[:5], dtype=torch.float32)).numpy().tolist()
print(json.dumps({
    "bentoml": bentoml.__version__,
    "sklearn": [str(sk.tag), sk_path, clf.predict(x).tolist()],
    "pytorch": [str(pt.tag), pt_path, net_out],
}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    python, why = ensure_bentoml_venv(REPO_ROOT / ".cache" / "bentoml-venv")
    if python is None:
        pytest.skip(f"no BentoML 1.4 virtual environment: {why}")
    out = tmp_path_factory.mktemp("bentomodels")
    script = out / "train_bentoml.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "RUNNERFLEET_HOME", "VIRTUAL_ENV")
    }
    env["BENTOML_HOME"] = str(out / "bentoml-home")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    done = subprocess.run(
        [str(python), str(script), str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sklearn_bentomodel_from_real_bentoml(exported, store_home):
    tag, path, predictions = exported["sklearn"]
    result = CliRunner().invoke(cli, ["models", "import", path])
    assert result.exit_code == 0, result.output
    model = runnerfleet.sklearn.get(tag)
    assert str(model.tag) == tag
    assert model.info.labels == {"owner": "team"} and model.info.metadata == {"acc": 0.97}
    assert model.info.signatures["predict"].batchable
    assert model.info.context["bentoml_version"] == exported["bentoml"]
    assert model.custom_objects == {"classes": ["setosa", "versicolor", "virginica"]}
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    runner = model.to_runner()
    runner.init_local(quiet=True)
    np.testing.assert_array_equal(runner.predict.run(x), predictions)
    assert runner.predict_proba.run(x[:2]).shape == (2, 3)


def test_pytorch_bentomodel_from_real_bentoml(exported, store_home):
    tag, path, expected = exported["pytorch"]
    model = runnerfleet.models.import_model(path)
    assert str(model.tag) == tag and model.info.module == "pytorch"
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    runner = runnerfleet.pytorch.get(tag).to_runner()
    runner.init_local(quiet=True)
    out = runner.run(x[:5].astype(np.float32))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
