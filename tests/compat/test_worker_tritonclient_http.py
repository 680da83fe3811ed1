"""tritonclient.http (from PyPI) and perf_analyzer -i http against a worker's HTTP port.

Own pytest process with the rest of tests/compat (tritonclient never shares one with our
protos). tritonclient.http runs on gevent; nothing here uses tritonclient's shared-memory
helper, which PROTOCOL_NOTES says does not mix with it in one process.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.compat import perf_analyzer_setup

pytestmark = pytest.mark.integration


def http_address(handle) -> str:
    with open(handle.port_file, encoding="utf-8") as f:
        return f"127.0.0.1:{json.load(f)['http_port']}"


@pytest.fixture
def client(worker):
    c = httpclient.InferenceServerClient(http_address(worker))
    yield c
    c.close()


def _input(x: np.ndarray, binary: bool = True) -> httpclient.InferInput:
    tensor = httpclient.InferInput(
        "input__0", list(x.shape), "FP64" if x.dtype == np.float64 else "FP32"
    )
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_in_process_predictions(client, expected, binary: bool) -> None:
    outputs = [httpclient.InferRequestedOutput("output__0", binary_data=binary)]
    result = client.infer("iris_clf", [_input(expected["x_iris"], binary)], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("output__0"), expected["y_iris_predict"])
    proba = client.infer(
        "iris_clf",
        [_input(expected["x_iris"], binary)],
        outputs=outputs,
        parameters={"method": "predict_proba"},
    )
    np.testing.assert_allclose(proba.as_numpy("output__0"), expected["y_iris_proba"], atol=0)
    digits = client.infer("digits_mlp", [_input(expected["x_digits"], binary)])
    np.testing.assert_allclose(
        digits.as_numpy("output__0"), expected["y_digits"], rtol=1e-5, atol=1e-5
    )


def test_metadata_config_readiness_statistics(client, tags, expected) -> None:
    meta = client.get_model_metadata("iris_clf")
    assert meta["name"] == "iris_clf"
    assert meta["versions"] == [tags["iris"].split(":")[1]]
    assert meta["inputs"][0] == {"name": "input__0", "datatype": "FP64", "shape": [-1, 4]}
    config = client.get_model_config("iris_clf")
    assert config["max_batch_size"] == 64
    assert config["input"][0]["dims"] == [4]
    assert "dynamic_batching" in config
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris_clf")
    assert not client.is_model_ready("nope")
    assert "model_repository" in client.get_server_metadata()["extensions"]
    before = client.get_inference_statistics("digits_mlp")["model_stats"][0]["inference_count"]
    client.infer("digits_mlp", [_input(expected["x_digits"])])
    after = client.get_inference_statistics("digits_mlp")["model_stats"][0]["inference_count"]
    assert after - before == expected["x_digits"].shape[0]
    names = {m["name"] for m in client.get_model_repository_index()}
    assert names == {"iris_clf", "digits_mlp"}


def test_errors_carry_status_and_reason(client, expected) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("no_such_model", [_input(expected["x_iris"])])
    assert info.value.status() == "404"
    assert "no_such_model" in info.value.message()
    wrong = httpclient.InferInput("input__0", [7, 4], "FP64")  # 28 values, then a 35-value shape
    wrong.set_data_from_numpy(expected["x_iris"].reshape(7, 4), binary_data=True)
    wrong.set_shape([7, 5])
    with pytest.raises(InferenceServerException) as info:
        client.infer("iris_clf", [wrong])
    assert info.value.status() == "400"
    assert "needs 280 bytes" in info.value.message()


@pytest.fixture(scope="session")
def perf_analyzer() -> perf_analyzer_setup.PerfAnalyzer:
    try:
        return perf_analyzer_setup.ensure()
    except Exception as exc:  # noqa: BLE001 - no network or no wheel: skip, saying why
        pytest.skip(f"perf_analyzer could not be downloaded: {exc}")


def run_perf_analyzer(perf_analyzer, address: str, model: str, *extra: str):
    argv = [str(perf_analyzer.binary), "-m", model, "-u", address, "-i", "http"]
    return subprocess.run(
        [*argv, "--measurement-interval", "500", *extra],
        env=perf_analyzer.env(),
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.mark.slow
def test_perf_analyzer_over_http(perf_analyzer, worker) -> None:
    address = http_address(worker)
    result = run_perf_analyzer(perf_analyzer, address, "digits_mlp")
    if result.returncode != 0 and "stable measurement" in result.stdout + result.stderr:
        # the protocol worked; a shared, noisy machine kept the 10% stability rule from holding
        result = run_perf_analyzer(
            perf_analyzer, address, "digits_mlp", "--stability-percentage", "100"
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Throughput:" in result.stdout
