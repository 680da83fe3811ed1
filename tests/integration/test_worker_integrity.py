"""A real worker refuses a model whose file was swapped on disk, and serves its other models.

Also: a worker that requires signatures serves the signed model and refuses the unsigned one.
"""

from __future__ import annotations

import re

import grpc
import joblib
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

import store
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.errors import NotFound
from runnerfleet.client import Client
from tests.support import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

demo_models = pytest.importorskip("runnerfleet.demo_models")

IRIS_X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.fixture
def two_irises(store_home):
    """(good, victim): two iris models; the victim's model file is then swapped for another
    valid estimator that always answers class 2 (what a silent swap used to serve)."""
    good = demo_models.save_iris()
    x = np.zeros((3, 4))
    victim_model = store.get(good).load_model()
    victim = store.save_model("sklearn", "victim", victim_model, signatures={"predict": {}})
    swapped = DummyClassifier(strategy="constant", constant=2).fit(x, [0, 1, 2])
    joblib.dump(swapped, store.get(victim.tag).path_of("model.joblib"))
    return store.get(good), store.get(victim.tag)


def test_worker_refuses_swapped_model_and_serves_the_other(two_irises, store_home):
    good, victim = two_irises
    worker = procs.start_worker([str(good.tag), str(victim.tag)], store_home)
    try:
        procs.wait_serving(worker.address, 90)
        with Client(worker.address, timeout_s=30) as client:
            assert client.infer("iris_clf", IRIS_X).tolist() == [0, 2, 1]
            assert not client.is_model_ready("victim")
            with pytest.raises(NotFound):
                client.infer("victim", IRIS_X)
        # a load asked for at run time is refused the same way, with the reason and the code
        with grpc.insecure_channel(worker.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="victim"))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "model.joblib" in info.value.details()
        with Client(worker.address, timeout_s=30) as client:  # still serving the other one
            assert client.infer("iris_clf", IRIS_X).tolist() == [0, 2, 1]
        log = worker.log
        refused = [line for line in log.splitlines() if "refusing to serve victim" in line]
        assert refused, log[-3000:]
        assert "model.joblib" in refused[0], log[-3000:]
        assert re.search(
            rf"loaded iris_clf:{good.tag.version} \(manifest sha256 "
            rf"{good.manifest_sha256}\)",
            log,
        ), log[-3000:]
        assert "Traceback" not in log
    finally:
        assert procs.stop(worker) == 0, worker.log[-3000:]


def test_worker_requiring_signatures_serves_only_signed_models(store_home, tmp_path):
    from store.signing import generate_keypair, sign_version

    iris = store.get(demo_models.save_iris())
    echo = store.get(demo_models.save_echo())
    key, pub = str(tmp_path / "k"), str(tmp_path / "k.pub")
    generate_keypair(key, pub)
    sign_version(iris, key)
    env = dict(__import__("os").environ)
    env.update({"RUNNERFLEET_REQUIRE_SIGNATURE": "1", "RUNNERFLEET_TRUSTED_KEYS": pub})
    worker = procs.start_worker([str(iris.tag), str(echo.tag)], store_home, env=env)
    try:
        procs.wait_serving(worker.address, 90)
        with Client(worker.address, timeout_s=30) as client:
            assert client.infer("iris_clf", IRIS_X).tolist() == [0, 2, 1]
            assert not client.is_model_ready("echo")
        assert re.search(r"refusing to serve echo:\S+: model echo:\S+: unsigned", worker.log), (
            worker.log[-3000:]
        )
    finally:
        assert procs.stop(worker) == 0, worker.log[-3000:]
