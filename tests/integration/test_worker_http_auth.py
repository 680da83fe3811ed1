"""A secured worker's HTTP/REST v2 front door enforces its gRPC side's auth and TLS.

Real worker processes: one with an inference and a control bearer token (plaintext), one with
TLS and client certificates (mTLS, the client's common name granted the inference scope).
Health stays open; 401 with ``WWW-Authenticate: Bearer`` for a missing or wrong token, 403 for
a credential without the route's scope, as on the gRPC side (``protos.auth``).
"""

from __future__ import annotations

import http.client
import ssl
import time

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.http_helpers import HttpReply, call, http_port, infer_json
from tests.integration.test_gateway_security import certs  # noqa: F401 - the CA fixture
from tests.support import procs

pytestmark = pytest.mark.integration

INFERENCE_TOKEN = "worker-http-inference-t0ken"
CONTROL_TOKEN = "worker-http-control-t0ken"
X = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
IRIS = [{"name": "input__0", "shape": [2, 4], "datatype": "FP64", "data": sum(X, [])}]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_ready(port: int, tls: ssl.SSLContext | None = None, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while call(port, "GET", "/v2/health/ready", tls=tls).status != 200:
        assert time.monotonic() < deadline, "worker never became ready over HTTP"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def token_worker(worker_store, tmp_path_factory):
    secrets = tmp_path_factory.mktemp("worker-tokens")
    (secrets / "inference.token").write_text(INFERENCE_TOKEN + "\n")
    (secrets / "control.token").write_text(CONTROL_TOKEN + "\n")
    handle = procs.start_worker(
        "iris_clf",
        worker_store,
        auth_token_file=secrets / "inference.token",
        control_token_file=secrets / "control.token",
    )
    try:
        port = http_port(handle)
        _wait_ready(port)
        yield handle, port
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


def _assert_refused(reply: HttpReply, status: int, challenge: str) -> None:
    assert reply.status == status, reply.body[:300]
    assert reply.headers["WWW-Authenticate"] == challenge
    assert reply.json()["error"]
    assert INFERENCE_TOKEN.encode() not in reply.body
    assert CONTROL_TOKEN.encode() not in reply.body


def test_tokens_and_scopes_over_the_workers_http(token_worker) -> None:
    handle, port = token_worker
    assert call(port, "GET", "/v2/health/live").status == 200  # probes need no credential
    for path in ("/v2", "/v2/models/iris_clf", "/v2/models/iris_clf/ready"):
        _assert_refused(call(port, "GET", path), 401, "Bearer")
    wrong = {"Authorization": "Bearer not-the-token"}
    _assert_refused(call(port, "GET", "/v2/models/iris_clf", headers=wrong), 401,
                    'Bearer error="invalid_token"')  # fmt: skip
    no_scheme = {"Authorization": INFERENCE_TOKEN}  # the token without "Bearer "
    _assert_refused(infer_json(port, "iris_clf", IRIS, headers=no_scheme), 401,
                    'Bearer error="invalid_token"')  # fmt: skip

    ok = infer_json(port, "iris_clf", IRIS, headers=_bearer(INFERENCE_TOKEN))
    assert ok.status == 200, ok.body[:300]
    with grpc.insecure_channel(handle.address) as channel:  # the same answer as over gRPC
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(
            codec.encode_request("iris_clf", [np.array(X)]),
            metadata=(("authorization", f"Bearer {INFERENCE_TOKEN}"),),
            timeout=30,
        )
        want = codec.decode_response_outputs(response)[0]
        with pytest.raises(grpc.RpcError) as denied:  # gRPC draws the same scope line
            stub.ModelStatistics(
                pb.ModelStatisticsRequest(name="iris_clf"),
                metadata=(("authorization", f"Bearer {INFERENCE_TOKEN}"),),
                timeout=30,
            )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ok.json()["outputs"][0]["data"] == want.tolist()

    # the inference token does not reach the control routes, nor the control token inference
    scope_inference = 'Bearer error="insufficient_scope", scope="inference"'
    scope_control = 'Bearer error="insufficient_scope", scope="control"'
    for method, path in (
        ("GET", "/v2/models/iris_clf/stats"),
        ("GET", "/v2/models/stats"),
        ("POST", "/v2/repository/models/iris_clf/unload"),
        ("POST", "/v2/repository/models/iris_clf/load"),
    ):
        reply = call(port, method, path, b"{}" if method == "POST" else None,
                     _bearer(INFERENCE_TOKEN))  # fmt: skip
        _assert_refused(reply, 403, scope_control)
    refused = infer_json(port, "iris_clf", IRIS, headers=_bearer(CONTROL_TOKEN))
    _assert_refused(refused, 403, scope_inference)
    stats = call(port, "GET", "/v2/models/iris_clf/stats", headers=_bearer(CONTROL_TOKEN))
    assert stats.status == 200
    assert [s["name"] for s in stats.json()["model_stats"]] == ["iris_clf"]
    # still serving after all the refusals
    assert infer_json(port, "iris_clf", IRIS, headers=_bearer(INFERENCE_TOKEN)).status == 200


def test_shared_memory_routes_need_the_inference_scope_as_their_rpcs(token_worker) -> None:
    handle, port = token_worker
    scope_inference = 'Bearer error="insufficient_scope", scope="inference"'
    routes = [
        ("GET", "/v2/systemsharedmemory/status", None),
        ("GET", "/v2/systemsharedmemory/region/r/status", None),
        ("POST", "/v2/systemsharedmemory/region/r/register", b'{"key": "/rf-x", "byte_size": 8}'),
        ("POST", "/v2/systemsharedmemory/region/r/unregister", None),
        ("POST", "/v2/systemsharedmemory/unregister", None),
    ]
    for method, path, body in routes:
        _assert_refused(call(port, method, path, body), 401, "Bearer")
        _assert_refused(call(port, method, path, body, _bearer(CONTROL_TOKEN)), 403,
                        scope_inference)  # fmt: skip
    allowed = call(port, "GET", "/v2/systemsharedmemory/status", headers=_bearer(INFERENCE_TOKEN))
    assert allowed.status == 200, allowed.body[:300]
    assert allowed.json() == []
    unregistered = call(port, "POST", "/v2/systemsharedmemory/unregister",
                        headers=_bearer(INFERENCE_TOKEN))  # fmt: skip
    assert unregistered.status == 200
    with grpc.insecure_channel(handle.address) as channel:  # the gRPC side draws the same line
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            stub.SystemSharedMemoryStatus(
                pb.SystemSharedMemoryStatusRequest(),
                metadata=(("authorization", f"Bearer {CONTROL_TOKEN}"),),
                timeout=30,
            )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_tls_worker_serves_https_with_its_grpc_certificates(worker_store, certs) -> None:  # noqa: F811
    handle = procs.start_worker(
        "iris_clf",
        worker_store,
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
        tls_client_ca=certs / "ca.pem",
        inference_identities="rf-client",
    )
    try:
        port = http_port(handle)
        with_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with_cert.load_cert_chain(certs / "client.pem", certs / "client.key")
        _wait_ready(port, with_cert)
        body = b'{"inputs": [{"name": "input__0", "shape": [1, 4], "datatype": "FP64", '
        body += b'"data": [5.1, 3.5, 1.4, 0.2]}]}'
        reply = call(port, "POST", "/v2/models/iris_clf/infer", body, tls=with_cert)
        assert reply.status == 200, reply.body[:300]
        assert len(reply.json()["outputs"][0]["data"]) == 1
        stats = call(port, "GET", "/v2/models/stats", tls=with_cert)  # rf-client: no control
        assert stats.status == 403
        without_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            call(port, "GET", "/v2/models/iris_clf", tls=without_cert)
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            call(port, "GET", "/v2/health/live")  # plaintext to the TLS port
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


def test_trace_and_log_settings_routes_need_the_control_scope(token_worker) -> None:
    """Triton's trace and logging routes change the process: control, as their rpcs."""
    handle, port = token_worker
    scope_control = 'Bearer error="insufficient_scope", scope="control"'
    routes = [
        ("GET", "/v2/logging", None),
        ("POST", "/v2/logging", b'{"log_verbose_level": 1}'),
        ("GET", "/v2/trace/setting", None),
        ("POST", "/v2/trace/setting", b'{"trace_rate": "10"}'),
        ("GET", "/v2/models/iris_clf/trace/setting", None),
        ("POST", "/v2/models/iris_clf/trace/setting", b'{"trace_rate": "10"}'),
    ]
    json_type = {"Content-Type": "application/json"}
    for method, path, body in routes:
        _assert_refused(call(port, method, path, body, json_type), 401, "Bearer")
        _assert_refused(call(port, method, path, body, {**json_type, **_bearer(INFERENCE_TOKEN)}),
                        403, scope_control)  # fmt: skip
    control = {**json_type, **_bearer(CONTROL_TOKEN)}
    before = call(port, "GET", "/v2/logging", headers=control)
    assert before.status == 200, before.body[:300]
    assert before.json()["log_verbose_level"] == 0  # nothing above changed it

    # bad bodies: 400 with the reason, nothing changed, the worker keeps serving
    for body in (b"{not json", b"[1, 2]", b'{"log_info": "yes"}', b'{"log_file": "/tmp/x"}'):
        reply = call(port, "POST", "/v2/logging", body, control)
        assert reply.status == 400, (body, reply.body[:300])
        assert reply.json()["error"]
    for body in (b'{"trace_rate": 5}', b'{"trace_level": ["TENSORS"]}', b'{"trace_count": "x"}'):
        reply = call(port, "POST", "/v2/trace/setting", body, control)
        assert reply.status == 400, (body, reply.body[:300])
    assert call(port, "GET", "/v2/logging", headers=control).json() == before.json()
    assert infer_json(port, "iris_clf", IRIS, headers=_bearer(INFERENCE_TOKEN)).status == 200
