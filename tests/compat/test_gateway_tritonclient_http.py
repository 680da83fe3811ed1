"""tritonclient.http and perf_analyzer -i http through the gateway's HTTP port (no protos)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.compat.test_worker_tritonclient_http import (
    http_address,
    perf_analyzer,  # noqa: F401 - the session fixture
    run_perf_analyzer,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(gateway):
    c = httpclient.InferenceServerClient(http_address(gateway), concurrency=4)
    yield c
    c.close()


def _input(x: np.ndarray) -> httpclient.InferInput:
    tensor = httpclient.InferInput(
        "input__0", list(x.shape), "FP64" if x.dtype == np.float64 else "FP32"
    )
    tensor.set_data_from_numpy(x)
    return tensor


def test_infer_metadata_config_through_the_gateway(client, expected, tags) -> None:
    result = client.infer("iris_clf", [_input(expected["x_iris"])])
    np.testing.assert_array_equal(result.as_numpy("output__0"), expected["y_iris_predict"])
    requests = [client.async_infer("digits_mlp", [_input(expected["x_digits"])]) for _ in range(8)]
    for request in requests:  # concurrent requests may share a batch: float sums reorder
        np.testing.assert_allclose(
            request.get_result().as_numpy("output__0"), expected["y_digits"], rtol=1e-5, atol=1e-5
        )
    # Triton's binary tensor extension both ways (Inference-Header-Content-Length), as
    # tritonclient.http sends and reads it with binary_data=True
    binary_out = [httpclient.InferRequestedOutput("output__0", binary_data=True)]
    both = client.infer("iris_clf", [_input(expected["x_iris"])], outputs=binary_out)
    assert both.get_output("output__0")["parameters"]["binary_data_size"] > 0
    np.testing.assert_array_equal(both.as_numpy("output__0"), expected["y_iris_predict"])
    meta = client.get_model_metadata("iris_clf")
    assert meta["versions"] == [tags["iris"].split(":")[1]]
    assert client.get_model_config("digits_mlp")["max_batch_size"] == 64
    assert client.is_server_ready()
    assert client.is_model_ready("digits_mlp")
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [_input(expected["x_iris"])])
    assert info.value.status() == "404"


@pytest.mark.slow
def test_perf_analyzer_over_http_through_the_gateway(perf_analyzer, gateway) -> None:  # noqa: F811
    address = http_address(gateway)
    result = run_perf_analyzer(perf_analyzer, address, "digits_mlp")
    if result.returncode != 0 and "stable measurement" in result.stdout + result.stderr:
        result = run_perf_analyzer(
            perf_analyzer, address, "digits_mlp", "--stability-percentage", "100"
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Throughput:" in result.stdout
