"""The scope rule and token handling of protos.auth (the interceptor runs in integration)."""

from __future__ import annotations

import pytest

from api_gateway.settings import GatewaySettings
from protos.auth import (
    CONTROL,
    INFERENCE,
    is_loopback,
    load_secret,
    policy_from_settings,
    required_scope,
)
from protos.errors import InvalidArgument
from runner_worker.settings import load_settings


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("/grpc.health.v1.Health/Check", None),
        ("/grpc.health.v1.Health/Watch", None),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "any"),
        ("/inference.GRPCInferenceService/ModelInfer", INFERENCE),
        ("/inference.GRPCInferenceService/RepositoryIndex", INFERENCE),
        ("/inference.GRPCInferenceService/RepositoryModelLoad", CONTROL),
        ("/inference.GRPCInferenceService/RepositoryModelUnload", CONTROL),
        ("/inference.GRPCInferenceService/ModelStatistics", CONTROL),
        ("/runnerfleet.internal.v1.WorkerInternal/ForwardBatch", INFERENCE),
        ("/runnerfleet.internal.v1.WorkerInternal/DescribeModels", INFERENCE),
        ("/runnerfleet.internal.v1.WorkerInternal/Drain", CONTROL),
        ("/some.Unknown/Method", INFERENCE),  # unknown rpcs are never open
    ],
)
def test_required_scope(method, scope):
    assert required_scope(method) == scope


def _policy(tmp_path, inference="tok-inf", control="tok-ctl"):
    (tmp_path / "inf").write_text(inference)
    (tmp_path / "ctl").write_text(control)
    settings = load_settings(
        {"auth_token_file": str(tmp_path / "inf"), "control_token_file": str(tmp_path / "ctl")},
        environ={},
    )
    return policy_from_settings(settings)


def test_tokens_grant_their_own_scope_only(tmp_path):
    policy = _policy(tmp_path, inference="old-inf\nnew-inf\n")
    assert policy.token_scopes(None) is None
    assert policy.token_scopes([("x-other", "v")]) is None
    assert policy.token_scopes([("authorization", "Bearer tok-ctl")]) == {CONTROL}
    assert policy.token_scopes([("authorization", "Bearer old-inf")]) == {INFERENCE}
    assert policy.token_scopes([("authorization", "Bearer new-inf")]) == {INFERENCE}
    assert policy.token_scopes([("authorization", "Bearer wrong")]) == frozenset()
    assert policy.token_scopes([("authorization", "tok-ctl")]) == frozenset()  # no scheme
    assert "tok-" not in repr(policy) and "-inf" not in repr(policy)


def test_same_token_for_both_scopes_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="must differ"):
        _policy(tmp_path, inference="same", control="same")


def test_certificate_identities_from_env(tmp_path):
    settings = load_settings(
        {"tls_cert": "c", "tls_key": "k", "tls_client_ca": "ca"},
        environ={"RUNNERFLEET_CONTROL_IDENTITIES": "ops-a, ops-b"},
    )
    policy = policy_from_settings(settings)
    assert policy.token_scopes([("authorization", "Bearer x")]) is None  # no tokens: cert decides
    assert policy.certificate_scopes({"x509_common_name": [b"ops-b"]}) == {CONTROL}
    assert policy.certificate_scopes({"x509_common_name": [b"runnerfleet-client"]}) == {INFERENCE}
    assert policy.certificate_scopes({"x509_common_name": [b"stranger"]}) == frozenset()


def test_empty_or_missing_token_file(tmp_path):
    (tmp_path / "empty").write_text("\n \n")
    with pytest.raises(InvalidArgument, match="empty"):
        load_secret(str(tmp_path / "empty"), None, "auth token")
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_secret(str(tmp_path / "absent"), None, "auth token")


def test_safe_bind_defaults_and_secrets_out_of_repr():
    assert load_settings({}, environ={}).host == "127.0.0.1"
    gateway = GatewaySettings.load(
        {"workers": ["127.0.0.1:1"]}, environ={"RUNNERFLEET_CLUSTER_TOKEN": "s3cr3t"}
    )
    assert gateway.host == "127.0.0.1" and gateway.cluster_token == "s3cr3t"
    assert "s3cr3t" not in repr(gateway)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_worker_client_certificate_needs_a_ca():
    with pytest.raises(InvalidArgument, match="worker-tls-ca"):
        GatewaySettings.load(
            {"workers": ["127.0.0.1:1"], "worker_tls_cert": "c", "worker_tls_key": "k"}, environ={}
        )
