"""`runnerfleet gateway --service module:svc`: APIs run in the gateway, runners on workers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from protos import grpc_service_pb2 as pb
from protos.errors import Internal, InvalidArgument
from runnerfleet.client import Client
from tests.integration.gateway_helpers import IRIS_X, seed_store, start_workers
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def service_gateway(tmp_path_factory):
    home = tmp_path_factory.mktemp("rfhome")
    tags = seed_store(home)
    (worker,) = start_workers(1, home, list(tags.values()))
    gateway = None
    try:
        env = {**os.environ, "RUNNERFLEET_HOME": str(home)}
        gateway = start_gateway(
            [worker.address], env=env, service="tests.integration.gateway_service_app:svc"
        )
        with Client(worker.address, timeout_s=30) as direct:
            expected = (
                direct.infer("iris_clf", IRIS_X),
                direct.infer("iris_clf", IRIS_X, method="predict_proba"),
            )
        yield gateway, expected
    finally:
        for handle in (gateway, worker):
            if handle is not None:
                procs.stop(handle)


@pytest.fixture
def client(service_gateway):
    with Client(service_gateway[0].address, timeout_s=30, retries=0) as c:
        yield c


def test_sync_and_async_apis_call_workers(client, service_gateway):
    predictions, probabilities = service_gateway[1]
    assert np.array_equal(client.infer("classify", IRIS_X), predictions)
    assert np.array_equal(
        client.infer("classify", IRIS_X.astype(np.float32)), predictions
    )  # converted
    proba = client.infer("classify_proba", IRIS_X)
    assert proba.dtype == np.float32
    assert np.allclose(proba, probabilities, atol=1e-6)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(client.infer("double_echo", x), x * 2)
    assert np.array_equal(client.infer("iris_clf", IRIS_X), predictions)  # models stay reachable


def test_validation_and_user_errors(client):
    with pytest.raises(InvalidArgument, match="shape"):
        client.infer("classify", np.zeros((2, 3)))
    with pytest.raises(InvalidArgument, match="dtype"):
        client.infer("double_echo", np.array([[b"a", b"b"]], dtype=object))  # not castable
    with pytest.raises(InvalidArgument, match="exactly one input"):
        client.infer("classify", IRIS_X, IRIS_X)
    with pytest.raises(Internal, match="failed on purpose"):
        client.infer("broken", IRIS_X)
    assert client.infer("classify", IRIS_X).shape == (3,)  # still serving


def test_metadata_config_and_index(client):
    metadata = client.model_metadata("classify")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("input__0", "FP64", [-1, 4])
    ]
    config = client.model_config("classify").config
    assert config.name == "classify"
    assert config.input[0].dims == [-1, 4]
    assert client.is_model_ready("classify")
    index = client._stub.RepositoryIndex(pb.RepositoryIndexRequest())
    names = {m.name: m.reason for m in index.models}
    assert names["classify"] == "gateway service API"
    assert "iris_clf" in names
    client.infer("classify", IRIS_X)  # one success of its own: no other test needs to run first
    stats = client._stub.ModelStatistics(pb.ModelStatisticsRequest(name="classify"))
    assert stats.model_stats[0].inference_stats.success.count >= 1
