"""A real worker's HTTP/REST v2 front door: Triton's routes, JSON and binary tensors, bad input.

The worker is the conftest's (iris_clf, echo, picky; 16 MiB message limit), started with
``--port 0`` so its HTTP port is any free one, read from the port file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from tests.integration.http_helpers import call, http_port, infer_json
from tests.support import procs

pytestmark = pytest.mark.integration

X = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def port(worker) -> int:
    return http_port(worker)


def test_health_and_server_metadata(port: int) -> None:
    assert call(port, "GET", "/v2/health/live").status == 200
    assert call(port, "GET", "/v2/health/ready").status == 200
    meta = call(port, "GET", "/v2").json()
    assert meta["name"] == "runnerfleet"
    assert "model_repository" in meta["extensions"]


def test_model_metadata_config_ready_stats(port: int, stub) -> None:
    grpc_meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris_clf"))
    meta = call(port, "GET", "/v2/models/iris_clf").json()
    assert meta["name"] == "iris_clf"
    assert meta["versions"] == list(grpc_meta.versions)
    assert meta["inputs"] == [{"name": "input__0", "datatype": "FP64", "shape": [-1, 4]}]
    version = meta["versions"][0]
    versioned = call(port, "GET", f"/v2/models/iris_clf/versions/{version}").json()
    assert versioned["versions"] == [version]
    config = call(port, "GET", "/v2/models/iris_clf/config").json()
    assert config["max_batch_size"] == 64
    assert config["input"][0]["dims"] == [4]
    assert config["input"][0]["data_type"] == "TYPE_FP64"
    assert call(port, "GET", "/v2/models/iris_clf/ready").status == 200
    assert call(port, "GET", "/v2/models/nope/ready").status == 400
    stats = call(port, "GET", "/v2/models/iris_clf/stats").json()["model_stats"]
    assert [s["name"] for s in stats] == ["iris_clf"]
    assert set(stats[0]["inference_stats"]["fail"]) == {"count", "ns"}
    everything = call(port, "GET", "/v2/models/stats").json()["model_stats"]
    assert {s["name"] for s in everything} == {"iris_clf", "echo", "picky"}


def test_json_infer_answers_as_grpc_does(port: int, stub) -> None:
    x = np.asarray(X)
    expected = codec.decode_response_outputs(
        stub.ModelInfer(codec.encode_request("iris_clf", [x], method="predict_proba"))
    )[0]
    reply = infer_json(
        port,
        "iris_clf",
        [{"name": "input__0", "shape": [2, 4], "datatype": "FP64", "data": X}],
        id="req-7",
        parameters={"method": "predict_proba"},
    )
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    doc = reply.json()
    assert doc["model_name"] == "iris_clf"
    assert doc["id"] == "req-7"
    (out,) = doc["outputs"]
    assert out["name"] == "output__0"
    assert out["datatype"] == "FP64"
    assert out["shape"] == [2, 3]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(2, 3), expected)


def test_binary_tensors_round_trip_4_mib(port: int) -> None:
    x = np.random.default_rng(0).standard_normal((1, 1024 * 1024)).astype(np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input__0",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    reply = call(
        port,
        "POST",
        "/v2/models/echo/infer",
        header + x.tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert reply.status == 200, reply.body[:500]
    length = int(reply.headers["Inference-Header-Content-Length"])
    doc = json.loads(reply.body[:length])
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == x.nbytes
    np.testing.assert_array_equal(np.frombuffer(reply.body[length:], np.float32), x.ravel())


def test_curl_example_works(port: int) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    body = (
        '{"inputs":[{"name":"input__0","shape":[1,4],"datatype":"FP64",'
        '"data":[5.1,3.5,1.4,0.2]}]}'
    )  # the README's curl example, as a user types it (curl's default Content-Type)
    url = f"http://127.0.0.1:{port}/v2/models/iris_clf/infer"
    result = subprocess.run(
        [curl, "-sS", "-X", "POST", url, "-d", body],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"][0]["data"] == [0]


def _binary_past_body() -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input__0",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    return header + b"\0" * 8, {"Inference-Header-Content-Length": str(len(header))}


BAD_CASES = {
    "malformed_json": (
        b'{"inputs": [',
        {"Content-Type": "application/json"},
        400,
        "not valid JSON",
    ),
    "data_vs_shape": (
        json.dumps(
            {"inputs": [{"name": "input__0", "shape": [2, 4], "datatype": "FP32", "data": [1]}]}
        ).encode(),
        {"Content-Type": "application/json"},
        400,
        "has 1 elements but shape [2, 4] needs 8",
    ),
    "binary_past_body": (*_binary_past_body(), 400, "runs past"),
    "header_length_past_body": (
        b"{}",
        {"Inference-Header-Content-Length": "999"},
        400,
        "only 2 bytes",
    ),
    "unknown_content_type": (b"<xml/>", {"Content-Type": "text/xml"}, 400, "Content-Type"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_400_with_the_reason(port: int, case: str) -> None:
    body, headers, status, needle = BAD_CASES[case]
    reply = call(port, "POST", "/v2/models/echo/infer", body, headers)
    assert reply.status == status, reply.body
    assert needle in reply.json()["error"]


def test_unknown_model_is_404_and_oversize_body_is_413(port: int) -> None:
    reply = infer_json(
        port, "no_such_model", [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]
    )
    assert reply.status == 404
    assert "no_such_model" in reply.json()["error"]
    big = b"{" + b" " * (17 * 1024 * 1024) + b"}"
    reply = call(port, "POST", "/v2/models/echo/infer", big, {"Content-Type": "application/json"})
    assert reply.status == 413
    assert "too large" in reply.json()["error"]
    model_error = infer_json(
        port, "picky", [{"name": "input__0", "shape": [1, 4], "datatype": "FP32", "data": [-1] * 4}]
    )
    assert model_error.status == 500
    assert "negative" in model_error.json()["error"]


def test_bad_requests_do_not_disturb_concurrent_good_ones(port: int) -> None:
    good = [{"name": "input__0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]

    def good_call(_: int) -> list[float]:
        reply = infer_json(port, "echo", good)
        assert reply.status == 200, reply.body
        return reply.json()["outputs"][0]["data"]

    def bad_call(i: int) -> int:
        body, headers, _status, _needle = BAD_CASES[sorted(BAD_CASES)[i % len(BAD_CASES)]]
        return call(port, "POST", "/v2/models/echo/infer", body, headers).status

    with ThreadPoolExecutor(8) as pool:
        goods = pool.map(good_call, range(40))
        bads = pool.map(bad_call, range(40))
        assert all(out == [1.0, 2.0, 3.0] for out in goods)
        assert set(bads) == {400}
    assert call(port, "GET", "/v2/health/ready").status == 200


def test_requests_are_counted_with_a_protocol_label(port: int, worker) -> None:
    def count(protocol: str) -> float:
        url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        pattern = (
            r'runnerfleet_worker_requests_total\{(?=[^}]*model="echo")(?=[^}]*code="OK")'
            rf'(?=[^}}]*protocol="{protocol}")[^}}]*\}} (\S+)'
        )
        return sum(float(v) for v in re.findall(pattern, text))

    before = count("http")
    before_grpc = count("grpc")
    good = [{"name": "input__0", "shape": [1, 1], "datatype": "FP32", "data": [1]}]
    for _ in range(3):
        assert infer_json(port, "echo", good).status == 200
    assert count("http") == before + 3
    assert count("grpc") == before_grpc


def test_repository_over_http(port: int) -> None:
    index = call(port, "POST", "/v2/repository/index", b"{}").json()
    assert {m["name"] for m in index} == {"iris_clf", "echo", "picky"}
    assert call(port, "POST", "/v2/repository/models/slow/load").status == 200
    reply = infer_json(
        port, "slow", [{"name": "input__0", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]
    )
    assert reply.json()["outputs"][0]["data"] == [1.0] * 4
    assert call(port, "POST", "/v2/repository/models/slow/unload").status == 200
    ready = call(port, "POST", "/v2/repository/index", b'{"ready": true}').json()
    assert "slow" not in {m["name"] for m in ready}
    missing = call(port, "POST", "/v2/repository/models/not_in_store/load")
    assert missing.status == 404
    assert "not_in_store" in missing.json()["error"]


def test_full_queue_answers_429_with_the_reason(worker_store) -> None:
    handle = procs.start_worker("slow", worker_store, max_batch_size=1, max_queue_size=2)
    try:
        procs.wait_serving(handle.address, 60)
        port = http_port(handle)
        one = [{"name": "input__0", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]
        with ThreadPoolExecutor(24) as pool:  # 50 ms per call, 2 may wait: most are refused
            replies = list(pool.map(lambda _: infer_json(port, "slow", one), range(24)))
        statuses = sorted(r.status for r in replies)
        assert 200 in statuses, statuses
        assert 429 in statuses, statuses
        assert set(statuses) <= {200, 429}
        full = next(r for r in replies if r.status == 429)
        assert "queue full" in full.json()["error"]
        assert call(port, "GET", "/v2/health/ready").status == 200
    finally:
        procs.stop(handle)
