"""`/metrics` on its own interface, over HTTPS with client certificates and basic auth.

A real worker with `--metrics-host 127.0.0.2` (gRPC stays on 127.0.0.1), certificates from
`runnerfleet certs --san 127.0.0.2`, and a `user:password` file.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.integration.gateway_helpers import seed_store
from tests.support import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSWORD = "scrape-pass-7f3a"


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    certs = tmp_path_factory.mktemp("certs")
    subprocess.run(
        [sys.executable, "-m", "runnerfleet.cli", "certs", "--out", str(certs), "--force",
         "--san", "127.0.0.2", "--no-tokens"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    auth = certs / "metrics.auth"
    auth.write_text(f"prometheus:{PASSWORD}\n")
    home = tmp_path_factory.mktemp("rfhome")
    tag = seed_store(home)["iris_clf"]
    handle = procs.start_worker(
        tag, home,
        metrics_host="127.0.0.2",
        metrics_tls_cert=certs / "server" / "tls.crt",
        metrics_tls_key=certs / "server" / "tls.key",
        metrics_tls_client_ca=certs / "ca" / "ca.crt",
        metrics_basic_auth_file=auth,
    )  # fmt: skip
    procs.wait_serving(handle.address)
    yield handle, certs
    procs.stop(handle)


def _get(url: str, context: ssl.SSLContext | None, password: str | None) -> int:
    request = urllib.request.Request(url)
    if password is not None:
        raw = base64.b64encode(f"prometheus:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {raw}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            body = reply.read().decode()
            assert "runnerfleet_worker_up" in body
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _context(certs, identity: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca" / "ca.crt"))
    if identity:
        context.load_cert_chain(certs / identity / "tls.crt", certs / identity / "tls.key")
    return context


def test_metrics_need_tls_a_client_certificate_and_the_password(worker):
    handle, certs = worker
    url = f"https://127.0.0.2:{handle.metrics_port}/metrics"
    with_cert = _context(certs, "client")
    assert _get(url, with_cert, PASSWORD) == 200
    assert _get(url, with_cert, None) == 401
    assert _get(url, with_cert, PASSWORD + "x") == 401
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, _context(certs, None), PASSWORD)  # no client certificate
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(f"http://127.0.0.2:{handle.metrics_port}/metrics", None, PASSWORD)  # plaintext
    assert PASSWORD not in handle.log


def test_metrics_bind_only_their_own_interface(worker):
    handle, _certs = worker
    with pytest.raises(ConnectionRefusedError):  # nothing listens on 127.0.0.1 at that port
        socket.create_connection(("127.0.0.1", handle.metrics_port), timeout=5).close()
