"""Gateway TLS (server certificate, optional client certificates) and bearer-token auth."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import numpy as np
import pytest

from protos.errors import Unauthenticated, Unavailable
from runnerfleet.client import Client
from tests.integration.gateway_helpers import (
    IRIS_X,
    LoadLoop,
    metric_value,
    scrape,
    seed_store,
    start_workers,
)
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    home = tmp_path_factory.mktemp("rfhome")
    tags = seed_store(home)
    (handle,) = start_workers(1, home, [tags["iris_clf"]])
    with Client(handle.address, timeout_s=30) as direct:
        expected = direct.infer("iris_clf", IRIS_X)
    yield handle, expected
    procs.stop(handle)


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=rf-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN=rf-{name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
                 cwd=d)  # fmt: skip
    return d


def test_bearer_token_guards_everything_but_health(worker, tmp_path):
    handle, expected = worker
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    gateway = start_gateway([handle.address], auth_token_file=token_file)
    try:
        good = lambda c: np.array_equal(c.infer("iris_clf", IRIS_X), expected)  # noqa: E731
        with LoadLoop(gateway.address, 4, good, client_kwargs={"token": TOKEN}) as load:
            load.wait_for_ok(20)
            for token in (None, "wrong", TOKEN + "x"):
                with Client(gateway.address, timeout_s=10, retries=0, token=token) as c:
                    with pytest.raises(Unauthenticated, match="bearer token") as info:
                        c.infer("iris_clf", IRIS_X)
                    assert TOKEN not in str(info.value)
                    with pytest.raises(Unauthenticated):
                        c.model_metadata("iris_clf")
            load.wait_for_ok(20)
        assert load.failures == []
        assert load.wrong == 0
        assert procs.health_status(gateway.address) == "SERVING"  # no token needed
        text = scrape(gateway.metrics_port)
        assert (
            metric_value(text, "runnerfleet_gateway_rejected_total", reason="unauthenticated") >= 6
        )
        assert TOKEN not in gateway.log
    finally:
        procs.stop(gateway)


def test_token_from_env(worker):
    handle, expected = worker
    import os

    env = {**os.environ, "RUNNERFLEET_AUTH_TOKEN": TOKEN}
    gateway = start_gateway([handle.address], env=env)
    try:
        with Client(gateway.address, timeout_s=10, retries=0, token=TOKEN) as c:
            assert np.array_equal(c.infer("iris_clf", IRIS_X), expected)
        with Client(gateway.address, timeout_s=10, retries=0) as c, pytest.raises(Unauthenticated):
            c.infer("iris_clf", IRIS_X)
    finally:
        procs.stop(gateway)


def _tls_health(
    address: str, ca: bytes, key: bytes | None = None, cert: bytes | None = None
) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    creds = grpc.ssl_channel_credentials(ca, key, cert)
    with grpc.secure_channel(address, creds) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_tls_server_certificate(worker, certs):
    handle, expected = worker
    gateway = start_gateway(
        [handle.address], tls_cert=certs / "server.pem", tls_key=certs / "server.key", wait=False
    )
    try:
        assert _tls_health(gateway.address, (certs / "ca.pem").read_bytes()) == "SERVING"
        with Client(
            gateway.address, timeout_s=10, retries=0, tls=True, root_certificates=certs / "ca.pem"
        ) as c:
            assert np.array_equal(c.infer("iris_clf", IRIS_X), expected)
        # plaintext is refused: the TLS server closes the socket, the client reports UNAVAILABLE
        with (
            Client(gateway.address, timeout_s=5, retries=0) as plain,
            pytest.raises(Unavailable),
        ):
            plain.infer("iris_clf", IRIS_X)
    finally:
        procs.stop(gateway)


def test_mtls_requires_a_client_certificate(worker, certs):
    handle, _expected = worker
    gateway = start_gateway(
        [handle.address],
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
        tls_client_ca=certs / "ca.pem",
        wait=False,
    )
    try:
        ca = (certs / "ca.pem").read_bytes()
        key, cert = (certs / "client.key").read_bytes(), (certs / "client.pem").read_bytes()
        assert _tls_health(gateway.address, ca, key, cert) == "SERVING"
        with pytest.raises(grpc.RpcError) as info:
            _tls_health(gateway.address, ca)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        procs.stop(gateway)
