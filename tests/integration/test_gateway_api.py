"""The gateway in front of real workers: every rpc, bad input, overload, stream, repository."""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np
import pytest

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos.errors import InvalidArgument, NotFound, ResourceExhausted
from runnerfleet.client import AsyncClient, Client
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two workers serving iris_clf and echo, one gateway with a 1 MiB message limit."""
    home = tmp_path_factory.mktemp("rfhome")
    tags = seed_store(home)
    workers = start_workers(2, home, list(tags.values()))
    gateway = None
    try:
        gateway = start_gateway([w.address for w in workers], max_message_bytes=1 << 20)
        yield {"home": home, "tags": tags, "workers": workers, "gateway": gateway}
    finally:
        for handle in [gateway, *workers]:
            if handle is not None:
                procs.stop(handle)


@pytest.fixture(scope="module")
def expected(cluster):
    """iris predictions and probabilities straight from a worker."""
    with Client(cluster["workers"][0].address, timeout_s=30) as direct:
        return direct.infer("iris_clf", IRIS_X), direct.infer(
            "iris_clf", IRIS_X, method="predict_proba"
        )


@pytest.fixture
def client(cluster):
    with Client(cluster["gateway"].address, timeout_s=30, retries=0) as c:
        yield c


def stub(cluster) -> pb_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(cluster["gateway"].address)
    return pb_grpc.GRPCInferenceServiceStub(channel)


def test_infer_matches_the_worker(client, expected):
    predictions, probabilities = expected
    assert np.array_equal(client.infer("iris_clf", IRIS_X), predictions)
    assert np.array_equal(client.infer("iris_clf", IRIS_X, method="predict_proba"), probabilities)
    tag = client.model_metadata("iris_clf").versions[0]
    assert np.array_equal(client.infer("iris_clf", IRIS_X, version=tag), predictions)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(client.infer("echo", x), x)


def test_async_client_through_the_gateway(cluster, expected):
    import asyncio

    async def run():
        async with AsyncClient(cluster["gateway"].address, timeout_s=30) as c:
            return await asyncio.gather(*(c.infer("iris_clf", IRIS_X) for _ in range(20)))

    for answer in asyncio.run(run()):
        assert np.array_equal(answer, expected[0])


def test_server_and_model_state(client, cluster):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris_clf")
    assert not client.is_model_ready("nope")
    metadata = client.model_metadata("iris_clf")
    assert metadata.name == "iris_clf"
    assert metadata.inputs[0].shape == [-1, 4]
    config = client.model_config("iris_clf").config
    assert config.name == "iris_clf"
    assert config.max_batch_size > 0
    s = stub(cluster)
    server = s.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "runnerfleet"
    assert "model_repository" in server.extensions
    assert "statistics" not in server.extensions  # store versions are not integers


def test_repository_index_lists_where_models_run(cluster):
    index = stub(cluster).RepositoryIndex(pb.RepositoryIndexRequest())
    by_name = {m.name: m for m in index.models}
    assert set(by_name) == {"iris_clf", "echo"}
    addresses = sorted(w.address for w in cluster["workers"])
    for model in by_name.values():
        assert model.state == "READY"
        assert sorted(model.reason.split(",")) == addresses


def test_statistics_are_summed_across_replicas(cluster, client):
    s = stub(cluster)
    per_worker = []
    for worker in cluster["workers"]:
        with grpc.insecure_channel(worker.address) as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelStatistics(
                pb.ModelStatisticsRequest(name="echo")
            )
            per_worker.append(sum(m.inference_stats.success.count for m in reply.model_stats))
    merged = s.ModelStatistics(pb.ModelStatisticsRequest(name="echo"))
    assert len(merged.model_stats) == 1
    assert merged.model_stats[0].inference_stats.success.count >= sum(per_worker)
    with pytest.raises(grpc.RpcError) as info:
        s.ModelStatistics(pb.ModelStatisticsRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_requests_get_clear_codes_while_good_ones_flow(cluster, expected):
    predictions = expected[0]
    with LoadLoop(
        cluster["gateway"].address,
        4,
        lambda c: np.array_equal(c.infer("iris_clf", IRIS_X), predictions),
    ) as load:
        load.wait_for_ok(20)
        s = stub(cluster)
        raw = s.ModelInfer.__class__  # noqa: F841 - keep the stub alive
        channel = grpc.insecure_channel(cluster["gateway"].address)
        infer_bytes = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        cases = [
            (b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, "malformed"),
            (
                pb.ModelInferRequest().SerializeToString(),
                grpc.StatusCode.INVALID_ARGUMENT,
                "model_name is required",
            ),
            (
                pb.ModelInferRequest(model_name="nope").SerializeToString(),
                grpc.StatusCode.NOT_FOUND,
                "nope",
            ),
            (
                pb.ModelInferRequest(model_name="iris_clf", model_version="v0").SerializeToString(),
                grpc.StatusCode.NOT_FOUND,
                "iris_clf:v0",
            ),
        ]
        for data, code, text in cases:
            with pytest.raises(grpc.RpcError) as info:
                infer_bytes(data, timeout=10)
            assert info.value.code() == code
            assert text in info.value.details()
        with Client(cluster["gateway"].address, timeout_s=10, retries=0) as c:
            with pytest.raises(InvalidArgument):  # the worker refuses a wrong shape; not retried
                c.infer("iris_clf", np.zeros((2, 3)))
            with pytest.raises(NotFound):
                c.infer("nope", IRIS_X)
            with pytest.raises(ResourceExhausted):  # 2 MiB > the gateway's 1 MiB limit
                c.infer("echo", np.zeros((1, 1 << 19), dtype=np.float32))
        load.wait_for_ok(20)
    assert load.failures == []
    assert load.wrong == 0
    text = scrape(cluster["gateway"].metrics_port)
    requests = "runnerfleet_gateway_requests_total"
    assert metric_value(text, requests, model="_unknown", code="NOT_FOUND", protocol="grpc") >= 1
    assert metric_value(text, requests, model="iris_clf", code="OK", protocol="grpc") >= 40


def test_stream_infer_uses_tritons_wrapper(cluster, expected):
    s = stub(cluster)
    from protos import codec

    requests = [codec.encode_request("iris_clf", [IRIS_X], request_id=str(i)) for i in range(5)]
    requests.append(pb.ModelInferRequest(model_name="nope", id="bad"))
    replies = list(s.ModelStreamInfer(iter(requests), timeout=30))
    assert len(replies) == 6
    by_id = {r.infer_response.id: r for r in replies}
    assert "not hosted" in by_id["bad"].error_message
    for i in range(5):
        reply = by_id[str(i)]
        assert reply.error_message == ""
        assert np.array_equal(codec.decode_response_outputs(reply.infer_response)[0], expected[0])


def test_repository_unload_and_load_through_the_gateway(cluster, client):
    s = stub(cluster)
    target = cluster["workers"][1].address
    param = {"worker": pb.ModelRepositoryParameter(string_param=target)}
    s.RepositoryModelUnload(
        pb.RepositoryModelUnloadRequest(model_name="echo", parameters=param), timeout=60
    )
    index = {m.name: m for m in s.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert index["echo"].reason == cluster["workers"][0].address
    x = np.ones((2, 4), dtype=np.float32)
    for _ in range(10):  # only the other replica serves echo now; no request fails
        assert np.array_equal(client.infer("echo", x), x)
    s.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(model_name="echo", parameters=param), timeout=120
    )
    index = {m.name: m for m in s.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert sorted(index["echo"].reason.split(",")) == sorted(w.address for w in cluster["workers"])
    with pytest.raises(grpc.RpcError) as info:
        s.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(
                model_name="echo",
                parameters={"worker": pb.ModelRepositoryParameter(string_param="1.2.3.4:5")},
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_metrics_name_workers_and_forwarding(cluster):
    text = scrape(cluster["gateway"].metrics_port)
    assert metric_value(text, "runnerfleet_gateway_workers") == 2
    for worker in cluster["workers"]:
        assert metric_value(text, "runnerfleet_gateway_worker_up", worker=worker.address) == 1
        assert (
            metric_value(text, "runnerfleet_gateway_inflight_requests", worker=worker.address) == 0
        )
    for reason in ("overload", "unauthenticated", "no_worker"):
        assert metric_value(text, "runnerfleet_gateway_rejected_total", reason=reason) is not None
    assert "runnerfleet_gateway_forward_batch_size_requests_bucket" in text
    assert "runnerfleet_gateway_retries_total" in text


def test_overload_is_refused_at_once_and_health_stays_up(cluster):
    gateway = start_gateway([w.address for w in cluster["workers"]], max_inflight=2)
    try:
        barrier = threading.Barrier(16)
        codes: list[str] = []

        def burst():
            with Client(gateway.address, timeout_s=30, retries=0) as c:
                barrier.wait()
                for _ in range(10):
                    try:
                        c.infer("echo", np.ones((64, 1024), dtype=np.float32))
                        codes.append("OK")
                    except ResourceExhausted:
                        codes.append("RESOURCE_EXHAUSTED")
                    assert procs.health_status(gateway.address) == "SERVING"

        threads = [threading.Thread(target=burst) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        assert len(codes) == 160
        assert "RESOURCE_EXHAUSTED" in codes
        assert "OK" in codes
        text = scrape(gateway.metrics_port)
        assert metric_value(text, "runnerfleet_gateway_rejected_total", reason="overload") >= 1
    finally:
        procs.stop(gateway)


def test_reflection_lists_the_services(cluster):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(cluster["gateway"].address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services


def test_workers_dns_discovers_workers(cluster, expected):
    worker = cluster["workers"][0]
    gateway = start_gateway(workers_dns=f"localhost:{worker.port}", dns_refresh_s=0.5)
    try:
        with Client(gateway.address, timeout_s=30, retries=0) as c:
            assert np.array_equal(c.infer("iris_clf", IRIS_X), expected[0])
        text = scrape(gateway.metrics_port)
        assert metric_value(text, "runnerfleet_gateway_worker_up", worker=worker.address) == 1
    finally:
        procs.stop(gateway)


def test_big_tensors_forward_beside_small_ones_unchanged(cluster, expected):
    """2 MiB tensors (sent as their own calls) and iris requests at once: every answer exact."""
    gateway = start_gateway([w.address for w in cluster["workers"]])
    try:
        procs.wait_serving(gateway.address)
        rng = np.random.default_rng(7)
        big = [rng.random((1, 1 << 19), dtype=np.float32) for _ in range(6)]

        async def run():
            async with AsyncClient(gateway.address, timeout_s=60) as c:
                return await asyncio.gather(
                    *(c.infer("echo", x) for x in big),
                    *(c.infer("iris_clf", IRIS_X) for _ in range(12)),
                )

        results = asyncio.run(run())
        for x, y in zip(big, results[: len(big)], strict=True):
            assert np.array_equal(x, y)
        for y in results[len(big) :]:
            assert np.array_equal(y, expected[0])
    finally:
        procs.stop(gateway)
