"""The gateway's HTTP front door: v2 routes forwarded to a worker, Service APIs BentoML-style,
bad input, the protocol metrics label, bearer token and TLS over HTTP.

One gateway (``--port 0``, so HTTP takes any free port) with the test Service, one worker.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runnerfleet.client import Client
from tests.integration.gateway_helpers import IRIS_X, metric_value, scrape, seed_store
from tests.integration.gateway_helpers import start_workers as _start_workers
from tests.integration.http_helpers import call, http_port, infer_json
from tests.integration.test_gateway_security import certs  # noqa: F401 - the CA fixture
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SERVICE = "tests.integration.http_service_app:svc"  # the gateway tests' Service + `shout`
TOKEN = "http-s3cret-token"
JSON = {"Content-Type": "application/json"}
IRIS_INPUT = [{"name": "input__0", "shape": [3, 4], "datatype": "FP64", "data": IRIS_X.tolist()}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("rfhome")
    tags = seed_store(home)
    (worker,) = _start_workers(1, home, list(tags.values()))
    gateway = None
    try:
        env = {**os.environ, "RUNNERFLEET_HOME": str(home)}
        gateway = start_gateway([worker.address], env=env, service=SERVICE)
        with Client(worker.address, timeout_s=30) as direct:
            expected = {
                "predict": direct.infer("iris_clf", IRIS_X),
                "proba": direct.infer("iris_clf", IRIS_X, method="predict_proba"),
            }
        yield gateway, worker, expected, env
    finally:
        for handle in (gateway, worker):
            if handle is not None:
                procs.stop(handle)


@pytest.fixture(scope="module")
def port(cluster) -> int:
    return http_port(cluster[0])


def test_v2_routes_answer_for_the_workers(port: int, cluster) -> None:
    _gateway, _worker, expected, _env = cluster
    assert call(port, "GET", "/v2/health/live").status == 200
    assert call(port, "GET", "/v2/health/ready").status == 200
    assert call(port, "GET", "/v2").json()["name"] == "runnerfleet"
    meta = call(port, "GET", "/v2/models/iris_clf").json()
    assert meta["inputs"][0]["shape"] == [-1, 4]
    assert call(port, "GET", "/v2/models/iris_clf/config").json()["max_batch_size"] == 64
    assert call(port, "GET", "/v2/models/iris_clf/ready").status == 200
    assert call(port, "GET", "/v2/models/classify/ready").status == 200  # a Service API
    reply = infer_json(port, "iris_clf", IRIS_INPUT, parameters={"method": "predict_proba"})
    assert reply.status == 200, reply.body
    out = reply.json()["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), expected["proba"])
    index = call(port, "POST", "/v2/repository/index", b"{}").json()
    assert {"iris_clf", "echo", "classify"} <= {m["name"] for m in index}
    stats = call(port, "GET", "/v2/models/iris_clf/stats").json()["model_stats"]
    assert stats
    assert stats[0]["name"] == "iris_clf"
    assert stats[0]["inference_count"] >= 3


def test_binary_tensors_through_the_gateway(port: int) -> None:
    x = np.arange(256 * 1024, dtype=np.float32).reshape(1, -1)
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
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    reply = call(
        port,
        "POST",
        "/v2/models/echo/infer",
        header + x.tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert reply.status == 200, reply.body[:300]
    length = int(reply.headers["Inference-Header-Content-Length"])
    np.testing.assert_array_equal(np.frombuffer(reply.body[length:], np.float32), x.ravel())


def test_service_api_answers_bentoml_style(port: int, cluster) -> None:
    _gateway, _worker, expected, _env = cluster
    body = json.dumps(IRIS_X.tolist()).encode()
    reply = call(port, "POST", "/classify", body, JSON)
    assert reply.status == 200, reply.body
    assert reply.json() == expected["predict"].tolist()
    proba = call(port, "POST", "/classify_proba", body, JSON)
    np.testing.assert_allclose(np.asarray(proba.json()), expected["proba"], atol=1e-6)
    wrong_shape = call(
        port, "POST", "/classify", b"[[1, 2, 3]]", {"Content-Type": "application/json"}
    )
    assert wrong_shape.status == 400
    assert "shape" in wrong_shape.json()["error"]
    broken = call(port, "POST", "/broken", b"[1]", JSON)
    assert broken.status == 500
    assert "failed on purpose" in broken.json()["error"]
    not_json = call(port, "POST", "/classify", b"[[1,", JSON)
    assert not_json.status == 400
    assert "not valid JSON" in not_json.json()["error"]
    text = call(port, "POST", "/classify", b"1 2 3", {"Content-Type": "text/plain"})
    assert text.status == 400
    assert "application/json" in text.json()["error"]
    v2 = infer_json(port, "classify", IRIS_INPUT)  # the same API as a v2 model
    assert v2.status == 200
    assert v2.json()["outputs"][0]["data"] == expected["predict"].tolist()


def test_service_api_curl_example(port: int, cluster) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        [curl, "-sS", "-X", "POST", "-H", "Content-Type: application/json",
         "-d", "[[5.1, 3.5, 1.4, 0.2]]", f"http://127.0.0.1:{port}/classify"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == cluster[2]["predict"][:1].tolist()


def test_openapi_document_lists_every_api(port: int) -> None:
    doc = call(port, "GET", "/docs.json").json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "iris_service"
    for api in ("classify", "classify_proba", "double_echo", "broken", "shout"):
        operation = doc["paths"][f"/{api}"]["post"]
        assert operation["operationId"] == api
        media = "text/plain" if api == "shout" else "application/json"
        assert media in operation["requestBody"]["content"]
    schema = doc["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"]["items"]["maxItems"] == 4
    assert "text/plain" in doc["paths"]["/shout"]["post"]["requestBody"]["content"]


def test_text_api_takes_and_answers_its_media_type(port: int) -> None:
    reply = call(port, "POST", "/shout", "héllo".encode(), {"Content-Type": "text/plain"})
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.body.decode() == "HÉLLO!"


def test_bad_input_and_unknown_models(port: int) -> None:
    cases = [
        (b'{"inputs": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (
            json.dumps(
                {"inputs": [{"name": "input__0", "shape": [2], "datatype": "FP64", "data": [1]}]}
            ).encode(),
            {},
            400,
            "needs 2",
        ),
        (b"{}", {"Inference-Header-Content-Length": "50"}, 400, "only 2 bytes"),
        (b"<a/>", {"Content-Type": "application/xml"}, 400, "Content-Type"),
    ]
    for body, headers, status, needle in cases:
        reply = call(port, "POST", "/v2/models/iris_clf/infer", body, headers)
        assert reply.status == status, reply.body
        assert needle in reply.json()["error"], reply.body
    unknown = infer_json(port, "no_such_model", IRIS_INPUT)
    assert unknown.status == 404
    assert "no_such_model" in unknown.json()["error"]
    assert call(port, "GET", "/v2/models/no_such_model").status == 404

    def good(_: int) -> int:
        return infer_json(port, "iris_clf", IRIS_INPUT).status

    def bad(i: int) -> int:
        body, headers, _status, _needle = cases[i % len(cases)]
        return call(port, "POST", "/v2/models/iris_clf/infer", body, headers).status

    with ThreadPoolExecutor(8) as pool:
        goods, bads = list(pool.map(good, range(30))), list(pool.map(bad, range(30)))
    assert set(goods) == {200}
    assert set(bads) == {400}


def test_gateway_counts_http_requests_under_their_own_label(port: int, cluster) -> None:
    gateway = cluster[0]

    def count(protocol: str) -> float:
        text = scrape(gateway.metrics_port)
        value = metric_value(
            text, "runnerfleet_gateway_requests_total", model="echo", code="OK", protocol=protocol
        )
        return value or 0.0

    before_http, before_grpc = count("http"), count("grpc")
    one = [{"name": "input__0", "shape": [1, 1], "datatype": "FP32", "data": [1]}]
    for _ in range(4):
        assert infer_json(port, "echo", one).status == 200
    assert count("http") == before_http + 4
    assert count("grpc") == before_grpc


def test_bearer_token_over_http(cluster, tmp_path) -> None:
    _gateway, worker, expected, env = cluster
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    gateway = start_gateway([worker.address], env=env, auth_token_file=token_file)
    try:
        port = http_port(gateway)
        assert call(port, "GET", "/v2/health/ready").status == 200  # health stays open
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            reply = call(port, "GET", "/v2/models/iris_clf", headers=headers)
            assert reply.status == 401
            assert "bearer token" in reply.json()["error"]
            assert TOKEN not in reply.body.decode()
        ok = infer_json(port, "iris_clf", IRIS_INPUT, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200
        assert ok.json()["outputs"][0]["data"] == expected["predict"].tolist()
        rejected = metric_value(
            scrape(gateway.metrics_port), "runnerfleet_gateway_rejected_total",
            reason="unauthenticated",
        )  # fmt: skip
        assert rejected is not None
        assert rejected >= 3
    finally:
        procs.stop(gateway)


def test_tls_and_mtls_over_http(cluster, certs) -> None:  # noqa: F811 - the imported fixture
    _gateway, worker, _expected, env = cluster
    gateway = start_gateway(
        [worker.address],
        env=env,
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
        tls_client_ca=certs / "ca.pem",
        wait=False,
    )
    try:
        procs_port = http_port(gateway)
        with_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with_cert.load_cert_chain(certs / "client.pem", certs / "client.key")
        assert call(procs_port, "GET", "/v2/health/live", tls=with_cert).status == 200
        without_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            call(procs_port, "GET", "/v2/health/live", tls=without_cert)
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            call(procs_port, "GET", "/v2/health/live")  # plaintext to a TLS port
    finally:
        procs.stop(gateway)


def test_repository_load_fans_out_and_reports_the_workers_error(port: int) -> None:
    missing = call(port, "POST", "/v2/repository/models/not_in_store/load", b"{}", JSON)
    assert missing.status == 404
    assert "not_in_store" in missing.json()["error"]
    bad_params = call(
        port, "POST", "/v2/repository/models/echo/load", b'{"parameters": {"x": 1.5}}', JSON
    )
    assert bad_params.status == 400
    assert "repository parameter" in bad_params.json()["error"]
    nobody = call(
        port,
        "POST",
        "/v2/repository/models/echo/unload",
        b'{"parameters": {"worker": "10.0.0.1:1"}}',
        JSON,
    )
    assert nobody.status == 404
    assert "10.0.0.1:1" in nobody.json()["error"]
