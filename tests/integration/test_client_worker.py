"""runnerfleet.client against a real worker process (port 0, health SERVING) serving iris_clf."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from protos.errors import DeadlineExceeded, InvalidArgument, NotFound
from runnerfleet.client import AsyncClient, Client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

procs = pytest.importorskip("tests.support.procs", reason="needs tests/support/procs.py")
demo_models = pytest.importorskip("runnerfleet.demo_models", reason="needs demo_models")

IRIS_X = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float64
)


@pytest.fixture(scope="module")
def iris_worker(tmp_path_factory):
    """(address, iris tag): one worker serving fresh iris_clf and echo, stopped after the module."""
    home = tmp_path_factory.mktemp("rfhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("RUNNERFLEET_HOME", str(home))
    try:
        tag = demo_models.save_iris()
        echo_tag = demo_models.save_echo()
        # A generous latency budget: these tests check the client, not shedding on a busy host.
        worker = procs.start_worker([str(tag), str(echo_tag)], home, max_latency_ms=60_000)
        try:
            procs.wait_serving(worker.address)
            yield worker.address, tag
        finally:
            procs.stop(worker)
    finally:
        mp.undo()


@pytest.fixture
def client(iris_worker):
    with Client(iris_worker[0], timeout_s=30) as c:
        yield c


def _local_model(tag):
    import runnerfleet.sklearn

    return runnerfleet.sklearn.load_model(str(tag))


def test_readiness(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris_clf")
    assert not client.is_model_ready("no-such-model")


def test_infer_default_method_matches_local_model(client, iris_worker):
    out = client.infer("iris_clf", IRIS_X)
    assert isinstance(out, np.ndarray)
    assert out.shape == (3,)
    np.testing.assert_array_equal(out, _local_model(iris_worker[1]).predict(IRIS_X))


def test_infer_named_method_and_version(client, iris_worker):
    tag = iris_worker[1]
    proba = client.infer("iris_clf", IRIS_X, method="predict_proba", version=tag.version)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(proba, _local_model(tag).predict_proba(IRIS_X), rtol=1e-6)


def test_large_messages_beyond_grpc_default_4mib(client):
    x = np.random.default_rng(0).random((8, 262_144), dtype=np.float32)  # 8 MiB each way
    out = client.infer("echo", x)
    np.testing.assert_array_equal(out, x)


def test_metadata_and_config(client):
    meta = client.model_metadata("iris_clf")
    assert meta.name == "iris_clf"
    assert [t.name for t in meta.inputs] == ["input__0"]
    assert [t.name for t in meta.outputs] == ["output__0"]
    assert meta.inputs[0].datatype == "FP64"
    config = client.model_config("iris_clf").config
    assert config.name == "iris_clf"
    assert config.max_batch_size > 0
    assert [t.name for t in config.input] == ["input__0"]


def test_errors_are_protos_error_classes(client):
    with pytest.raises(NotFound):
        client.infer("no-such-model", IRIS_X)
    with pytest.raises(NotFound):
        client.model_metadata("no-such-model")
    with pytest.raises((NotFound, InvalidArgument), match="no_such_method"):
        client.infer("iris_clf", IRIS_X, method="no_such_method")
    with pytest.raises(InvalidArgument):
        client.infer("iris_clf", np.zeros((2, 2, 2)))  # wrong rank for the model


def test_deadline(iris_worker):
    with Client(iris_worker[0], timeout_s=30) as c:
        assert c.is_server_ready()  # connect first: an unconnected channel may say UNAVAILABLE
        with pytest.raises(DeadlineExceeded):
            c.infer("iris_clf", IRIS_X, timeout_s=1e-6)


def test_async_client_concurrent_calls(iris_worker):
    address, tag = iris_worker
    expected = _local_model(tag).predict(IRIS_X)

    async def main():
        async with AsyncClient(address, timeout_s=30) as c:
            assert await c.is_server_ready()
            assert await c.is_model_ready("iris_clf")
            assert (await c.model_metadata("iris_clf")).name == "iris_clf"
            assert (await c.model_config("iris_clf")).config.name == "iris_clf"
            results = await asyncio.gather(*(c.infer("iris_clf", IRIS_X) for _ in range(32)))
            with pytest.raises(NotFound):
                await c.infer("no-such-model", IRIS_X)
            return results

    for out in asyncio.run(main()):
        np.testing.assert_array_equal(out, expected)


def test_token_travels_as_bearer_metadata(iris_worker):
    with Client(iris_worker[0], token="s3cret", timeout_s=30) as c:
        assert c.infer("iris_clf", IRIS_X).shape == (3,)  # workers accept and ignore it
