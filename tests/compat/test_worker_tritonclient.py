"""tritonclient.grpc (from PyPI) against a worker: infer, metadata, config, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration


@pytest.fixture
def client(worker) -> grpcclient.InferenceServerClient:
    c = grpcclient.InferenceServerClient(worker.address)
    yield c
    c.close()


def _infer(client, model, x, *, method=None, output="output__0"):
    inp = grpcclient.InferInput(
        "input__0", list(x.shape), "FP32" if x.dtype == np.float32 else "FP64"
    )
    inp.set_data_from_numpy(x)
    params = {"method": method} if method else None
    result = client.infer(model, [inp], parameters=params)
    return result.as_numpy(output)


def test_infer_matches_in_process_predictions(client, expected) -> None:
    np.testing.assert_array_equal(
        _infer(client, "iris_clf", expected["x_iris"]), expected["y_iris_predict"]
    )
    proba = _infer(client, "iris_clf", expected["x_iris"], method="predict_proba")
    np.testing.assert_allclose(proba, expected["y_iris_proba"], rtol=0, atol=0)
    np.testing.assert_allclose(
        _infer(client, "digits_mlp", expected["x_digits"]),
        expected["y_digits"],
        rtol=1e-5,
        atol=1e-5,
    )


def test_metadata_and_config(client, tags) -> None:
    meta = client.get_model_metadata("iris_clf", as_json=True)
    assert meta["name"] == "iris_clf"
    assert meta["versions"] == [tags["iris"].split(":")[1]]
    assert meta["inputs"][0] == {"name": "input__0", "datatype": "FP64", "shape": ["-1", "4"]}
    config = client.get_model_config("iris_clf", as_json=True)["config"]
    assert config["max_batch_size"] == 64
    assert config["input"][0]["dims"] == ["4"]
    assert config["input"][0]["data_type"] == "TYPE_FP64"
    assert "dynamic_batching" in config
    assert client.is_model_ready("iris_clf")
    assert client.is_server_ready()
    assert client.is_server_live()


def test_statistics_count_rows_and_batches(client, expected) -> None:
    before = client.get_inference_statistics("digits_mlp", as_json=True)["model_stats"][0]
    _infer(client, "digits_mlp", expected["x_digits"])
    after = client.get_inference_statistics("digits_mlp", as_json=True)["model_stats"][0]
    rows = expected["x_digits"].shape[0]
    assert int(after.get("inference_count", 0)) - int(before.get("inference_count", 0)) == rows
    assert int(after["execution_count"]) - int(before.get("execution_count", 0)) == 1
    assert int(after["inference_stats"]["success"]["count"]) >= 1
    assert any(int(b["batch_size"]) == rows for b in after["batch_stats"])


def test_errors_reach_tritonclient(client, expected) -> None:
    with pytest.raises(InferenceServerException, match="no_such_model"):
        _infer(client, "no_such_model", expected["x_iris"])
    with pytest.raises(InferenceServerException, match="FP64"):
        _infer(client, "iris_clf", expected["x_iris"].astype(np.float32))
