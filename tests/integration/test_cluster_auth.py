"""Cluster trust with real processes and real certificates made by `runnerfleet certs`.

Three workers and one gateway:
- worker T: TLS (server certificate) and one bearer token per scope;
- worker M: mTLS, certificate identities only (CN runnerfleet-client = inference,
  runnerfleet-admin = control, runnerfleet-gateway = both; the settings' defaults);
- worker P: plaintext, no credentials (loopback dev mode);
- the gateway: TLS to its clients with its own two tokens, TLS to the workers verified against
  the dev CA, the gateway certificate to M and the cluster tokens to T; P must never join.

Every rpc of both processes (taken from the service descriptors, so a new rpc is covered) is
called without a credential, with a wrong one and with each scope's credential.
"""

from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import codec, grpc_service_pb2, internal_pb2
from tests.integration.gateway_helpers import IRIS_X, metric_value, scrape, seed_store
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONTROL_RPCS = {
    "RepositoryModelLoad", "RepositoryModelUnload", "ModelStatistics",
    "TraceSetting", "LogSettings", "Drain",
}  # fmt: skip
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
REFUSED = {UNAUTHENTICATED, PERMISSION_DENIED}


def _rpcs(*services) -> list[tuple[str, object]]:
    return [(f"/{svc.full_name}/{m.name}", m) for svc in services for m in svc.methods]


INFERENCE_SERVICE = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
INTERNAL_SERVICE = internal_pb2.DESCRIPTOR.services_by_name["WorkerInternal"]
WORKER_RPCS = _rpcs(INFERENCE_SERVICE, INTERNAL_SERVICE)
GATEWAY_RPCS = _rpcs(INFERENCE_SERVICE)
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def _request(method) -> object:
    request = message_factory.GetMessageClass(method.input_type)()
    if "model_name" in method.input_type.fields_by_name:
        request.model_name = "absent_model"  # load/unload never touch a served model
    return request


def call(channel: grpc.Channel, path: str, method, metadata=None) -> grpc.StatusCode:
    """Call `path` once with an empty-ish request; the status code it ended with."""
    response_class = message_factory.GetMessageClass(method.output_type)
    kwargs = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    request = _request(method)
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path, **kwargs)(
                iter([request]), timeout=20, metadata=metadata
            ):
                pass
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **kwargs)(request, timeout=20, metadata=metadata):
                pass
        else:
            channel.unary_unary(path, **kwargs)(request, timeout=20, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def reflection_code(channel: grpc.Channel, metadata=None) -> grpc.StatusCode:
    from grpc_reflection.v1alpha import reflection_pb2

    stream = channel.stream_stream(
        REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    try:
        replies = list(
            stream(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                   timeout=20, metadata=metadata)
        )  # fmt: skip
    except grpc.RpcError as exc:
        return exc.code()
    assert replies
    assert replies[0].list_services_response.service
    return grpc.StatusCode.OK


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def tls_channel(address: str, certs, identity: str | None = None) -> grpc.Channel:
    ca = (certs / "ca" / "ca.crt").read_bytes()
    if identity is None:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca))
    key = (certs / identity / "tls.key").read_bytes()
    cert = (certs / identity / "tls.crt").read_bytes()
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca, key, cert))


def health(channel: grpc.Channel, wait: bool = False, timeout_s: float = 120) -> str:
    """The health status; with `wait`, block (Health.Watch) until SERVING."""
    stub = health_pb2_grpc.HealthStub(channel)
    if wait:
        stream = stub.Watch(health_pb2.HealthCheckRequest(), timeout=timeout_s, wait_for_ready=True)
        try:
            for reply in stream:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return "SERVING"
        finally:
            stream.cancel()
    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A dev CA, certificates and tokens made by the real CLI."""
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        [sys.executable, "-m", "runnerfleet.cli", "certs", "--out", str(out), "--force"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tokens(certs):
    return {
        "inference": (certs / "tokens" / "inference.token").read_text().strip(),
        "control": (certs / "tokens" / "control.token").read_text().strip(),
    }


@pytest.fixture(scope="module")
def cluster(certs, tokens, tmp_path_factory):
    """Workers T, M, P and a gateway routing to all three (P is refused: plaintext)."""
    home = tmp_path_factory.mktemp("rfhome")
    tag = seed_store(home)["iris_clf"]
    server = {"tls_cert": certs / "server" / "tls.crt", "tls_key": certs / "server" / "tls.key"}
    started = []
    try:
        worker_t = procs.start_worker(
            tag, home, **server,
            auth_token_file=certs / "tokens" / "inference.token",
            control_token_file=certs / "tokens" / "control.token",
        )  # fmt: skip
        started.append(worker_t)
        worker_m = procs.start_worker(tag, home, **server, tls_client_ca=certs / "ca" / "ca.crt")
        started.append(worker_m)
        worker_p = procs.start_worker(tag, home)
        started.append(worker_p)
        with tls_channel(worker_t.address, certs) as ch:
            health(ch, wait=True)
        with tls_channel(worker_m.address, certs, "client") as ch:
            health(ch, wait=True)
        procs.wait_serving(worker_p.address)
        # the gateway's own client tokens differ from the cluster tokens it presents to workers
        gw_tokens = {"inference": "gw-inference-" + tokens["inference"][:8], "control": "gw-ctl-x"}
        gw_dir = tmp_path_factory.mktemp("gwtokens")
        for scope, value in gw_tokens.items():
            (gw_dir / f"{scope}.token").write_text(value + "\n")
        gateway = start_gateway(
            [worker_t.address, worker_m.address, worker_p.address],
            **server,
            auth_token_file=gw_dir / "inference.token",
            control_token_file=gw_dir / "control.token",
            worker_tls_ca=certs / "ca" / "ca.crt",
            worker_tls_cert=certs / "gateway" / "tls.crt",
            worker_tls_key=certs / "gateway" / "tls.key",
            cluster_token_file=certs / "tokens" / "inference.token",
            cluster_control_token_file=certs / "tokens" / "control.token",
            wait=False,
        )  # fmt: skip
        started.append(gateway)
        with tls_channel(gateway.address, certs) as ch:
            health(ch, wait=True)
        yield {
            "T": worker_t, "M": worker_m, "P": worker_p, "gateway": gateway,
            "gw_tokens": gw_tokens, "tag": tag,
        }  # fmt: skip
    finally:
        for handle in reversed(started):
            procs.stop(handle)


@pytest.mark.parametrize(("path", "method"), WORKER_RPCS, ids=[p for p, _ in WORKER_RPCS])
def test_worker_tokens_guard_every_rpc(cluster, certs, tokens, path, method):
    """Worker T: no token or a wrong one is UNAUTHENTICATED; the other scope's token is
    PERMISSION_DENIED; the rpc's own scope passes the check."""
    scope, other = ("control", "inference") if method.name in CONTROL_RPCS else (
        "inference", "control"
    )  # fmt: skip
    with tls_channel(cluster["T"].address, certs) as ch:
        assert call(ch, path, method) == UNAUTHENTICATED
        assert call(ch, path, method, bearer(tokens[scope] + "x")) == UNAUTHENTICATED
        assert call(ch, path, method, (("authorization", tokens[scope]),)) == UNAUTHENTICATED
        assert call(ch, path, method, bearer(tokens[other])) == PERMISSION_DENIED
        if method.name != "Drain":  # a real drain would take the worker out; tested below
            assert call(ch, path, method, bearer(tokens[scope])) not in REFUSED
        assert health(ch) == "SERVING"


@pytest.mark.parametrize(("path", "method"), WORKER_RPCS, ids=[p for p, _ in WORKER_RPCS])
def test_worker_certificate_identities_guard_every_rpc(cluster, certs, path, method):
    """Worker M (mTLS): the client certificate's CN decides the scope."""
    control = method.name in CONTROL_RPCS
    with tls_channel(cluster["M"].address, certs, "client") as inference_ch:
        code = call(inference_ch, path, method)
        assert code == PERMISSION_DENIED if control else code not in REFUSED
    if method.name == "Drain":  # a real drain would take the worker out
        return
    with tls_channel(cluster["M"].address, certs, "admin") as control_ch:
        code = call(control_ch, path, method)
        assert code not in REFUSED if control else code == PERMISSION_DENIED


def test_worker_without_client_certificate_is_refused(cluster, certs):
    """mTLS: no certificate (or one from another CA) fails the handshake."""
    path, method = WORKER_RPCS[0]
    with tls_channel(cluster["M"].address, certs) as ch:
        assert call(ch, path, method) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(cluster["M"].address) as ch:  # plaintext to a TLS port
        assert call(ch, path, method) == grpc.StatusCode.UNAVAILABLE


def test_foreign_ca_certificate_is_refused(cluster, certs, tmp_path):
    foreign = tmp_path / "foreign"
    subprocess.run(
        [sys.executable, "-m", "runnerfleet.cli", "certs", "--out", str(foreign), "--no-tokens"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    ca = (certs / "ca" / "ca.crt").read_bytes()
    creds = grpc.ssl_channel_credentials(
        ca,
        (foreign / "admin" / "tls.key").read_bytes(),
        (foreign / "admin" / "tls.crt").read_bytes(),
    )
    path, method = next(r for r in WORKER_RPCS if r[1].name == "RepositoryIndex")
    with grpc.secure_channel(cluster["M"].address, creds) as ch:
        assert call(ch, path, method) == grpc.StatusCode.UNAVAILABLE


def test_reflection_needs_a_credential(cluster, certs, tokens):
    with tls_channel(cluster["T"].address, certs) as ch:
        assert reflection_code(ch) == UNAUTHENTICATED
        assert reflection_code(ch, bearer("nope")) == UNAUTHENTICATED
        assert reflection_code(ch, bearer(tokens["inference"])) == grpc.StatusCode.OK
    with tls_channel(cluster["gateway"].address, certs) as ch:
        assert reflection_code(ch) == UNAUTHENTICATED
        assert reflection_code(ch, bearer(cluster["gw_tokens"]["control"])) == grpc.StatusCode.OK


def test_drain_without_control_scope_leaves_the_worker_serving(cluster, certs, tokens):
    path = "/runnerfleet.internal.v1.WorkerInternal/Drain"
    method = INTERNAL_SERVICE.methods_by_name["Drain"]
    with tls_channel(cluster["T"].address, certs) as ch:
        for metadata in (None, bearer("guess"), bearer(tokens["inference"])):
            assert call(ch, path, method, metadata) in REFUSED
        assert health(ch) == "SERVING"
    with tls_channel(cluster["M"].address, certs, "client") as ch:
        assert call(ch, path, method) == PERMISSION_DENIED
        assert health(ch) == "SERVING"
    with tls_channel(cluster["gateway"].address, certs) as ch:
        assert health(ch) == "SERVING"


@pytest.mark.parametrize(("path", "method"), GATEWAY_RPCS, ids=[p for p, _ in GATEWAY_RPCS])
def test_gateway_scopes_guard_every_rpc(cluster, certs, path, method):
    gw = cluster["gw_tokens"]
    scope, other = ("control", "inference") if method.name in CONTROL_RPCS else (
        "inference", "control"
    )  # fmt: skip
    with tls_channel(cluster["gateway"].address, certs) as ch:
        assert call(ch, path, method) == UNAUTHENTICATED
        assert call(ch, path, method, bearer(gw[scope] + "x")) == UNAUTHENTICATED
        assert call(ch, path, method, bearer(gw[other])) == PERMISSION_DENIED
        assert call(ch, path, method, bearer(gw[scope])) not in REFUSED


def _inference_count(channel: grpc.Channel, metadata=None) -> int:
    from protos import grpc_service_pb2_grpc

    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
    reply = stub.ModelStatistics(
        grpc_service_pb2.ModelStatisticsRequest(name="iris_clf"), timeout=20, metadata=metadata
    )
    return sum(s.inference_count for s in reply.model_stats)


def test_gateway_forwards_over_tls_with_each_workers_credential(cluster, certs, tokens):
    """Through the gateway: answers equal a direct call; T (token) and M (certificate) both
    serve forwards over TLS; P (plaintext while TLS is configured) never joins the pool."""
    from protos import grpc_service_pb2_grpc

    gw = cluster["gw_tokens"]
    with grpc.insecure_channel(cluster["P"].address) as plain:
        stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(plain)
        direct = stub.ModelInfer(codec.encode_request("iris_clf", [IRIS_X]), timeout=20)
        expected = codec.decode_response_outputs(direct)[0]
        p_before = _inference_count(plain)
    with tls_channel(cluster["T"].address, certs) as ch:
        t_before = _inference_count(ch, bearer(tokens["control"]))
    with tls_channel(cluster["M"].address, certs, "admin") as ch:
        m_before = _inference_count(ch)
    with tls_channel(cluster["gateway"].address, certs) as ch:
        stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(ch)
        for _ in range(40):
            reply = stub.ModelInfer(
                codec.encode_request("iris_clf", [IRIS_X]),
                timeout=20,
                metadata=bearer(gw["inference"]),
            )
            assert np.array_equal(codec.decode_response_outputs(reply)[0], expected)
        # control through the gateway: it presents its control credential to every worker
        stats = stub.ModelStatistics(
            grpc_service_pb2.ModelStatisticsRequest(name="iris_clf"),
            timeout=20, metadata=bearer(gw["control"]),
        )  # fmt: skip
        assert sum(s.inference_count for s in stats.model_stats) >= 40
        # one call without a credential: refused and counted (this test needs no other first)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(codec.encode_request("iris_clf", [IRIS_X]), timeout=20)
        assert refused.value.code() == UNAUTHENTICATED
    with tls_channel(cluster["T"].address, certs) as ch:
        assert _inference_count(ch, bearer(tokens["control"])) > t_before
    with tls_channel(cluster["M"].address, certs, "admin") as ch:
        assert _inference_count(ch) > m_before
    with grpc.insecure_channel(cluster["P"].address) as plain:
        assert _inference_count(plain) == p_before  # the plaintext worker got nothing
    text = scrape(cluster["gateway"].metrics_port)
    assert metric_value(text, "runnerfleet_gateway_worker_up", worker=cluster["P"].address) == 0
    assert metric_value(text, "runnerfleet_gateway_worker_up", worker=cluster["T"].address) == 1
    assert metric_value(text, "runnerfleet_gateway_worker_up", worker=cluster["M"].address) == 1
    assert metric_value(text, "runnerfleet_gateway_rejected_total", reason="unauthenticated") >= 1


def test_no_token_in_any_log(cluster, tokens):
    secrets = [*tokens.values(), *cluster["gw_tokens"].values()]
    for name in ("T", "M", "P", "gateway"):
        log = cluster[name].log
        assert log, name
        for secret in secrets:
            assert secret not in log, f"a token leaked into the log of {name}"


def test_container_healthcheck_speaks_mtls(cluster, certs):
    """deploy/healthcheck.py (the compose and Kubernetes probe) reaches an mTLS worker with the
    server certificate and no token; without TLS settings it cannot."""
    import os

    script = procs.REPO_ROOT / "deploy" / "healthcheck.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNERFLEET_HEALTH_")}
    target = cluster["M"].address

    def probe(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), target], env={**env, **extra},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    assert probe({}).returncode == 1
    ok = probe(
        {
            "RUNNERFLEET_HEALTH_TLS_CA": str(certs / "ca" / "ca.crt"),
            "RUNNERFLEET_HEALTH_TLS_CERT": str(certs / "server" / "tls.crt"),
            "RUNNERFLEET_HEALTH_TLS_KEY": str(certs / "server" / "tls.key"),
            "RUNNERFLEET_HEALTH_TLS_SERVER_NAME": "localhost",
        }
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "SERVING" in ok.stdout, ok.stdout + ok.stderr


def test_gateway_certificate_identities_per_scope(cluster, certs):
    """A gateway with mTLS for its clients: the client certificate's CN picks the scope."""
    server = {"tls_cert": certs / "server" / "tls.crt", "tls_key": certs / "server" / "tls.key"}
    gateway = start_gateway(
        [cluster["M"].address],
        **server,
        tls_client_ca=certs / "ca" / "ca.crt",
        worker_tls_ca=certs / "ca" / "ca.crt",
        worker_tls_cert=certs / "gateway" / "tls.crt",
        worker_tls_key=certs / "gateway" / "tls.key",
        wait=False,
    )  # fmt: skip
    try:
        with tls_channel(gateway.address, certs, "client") as ch:
            health(ch, wait=True)
            for path, method in GATEWAY_RPCS:
                code = call(ch, path, method)
                assert code == PERMISSION_DENIED if method.name in CONTROL_RPCS else (
                    code not in REFUSED
                ), (path, code)  # fmt: skip
        with tls_channel(gateway.address, certs, "admin") as ch:
            for path, method in GATEWAY_RPCS:
                code = call(ch, path, method)
                assert code not in REFUSED if method.name in CONTROL_RPCS else (
                    code == PERMISSION_DENIED
                ), (path, code)  # fmt: skip
    finally:
        procs.stop(gateway)
