"""A real worker answers every rpc of DESIGN.md section 3 for its models."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import internal_pb2 as ipb
from protos import internal_pb2_grpc as ipb_grpc
from tests.support import procs

pytestmark = pytest.mark.integration

X_IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


def _expected_iris(method: str) -> np.ndarray:
    import store

    return np.asarray(store.get("iris_clf").load_runnable().methods[method](X_IRIS))


def test_health_is_serving(worker, channel) -> None:
    assert procs.health_status(worker.address) == "SERVING"
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_infer_default_and_named_method(stub, worker_store, monkeypatch) -> None:
    monkeypatch.setenv("RUNNERFLEET_HOME", str(worker_store))
    resp = stub.ModelInfer(codec.encode_request("iris_clf", [X_IRIS]))
    assert resp.outputs[0].name == "output__0"
    np.testing.assert_array_equal(codec.decode_response_outputs(resp)[0], _expected_iris("predict"))
    resp = stub.ModelInfer(codec.encode_request("iris_clf", [X_IRIS], method="predict_proba"))
    np.testing.assert_array_equal(
        codec.decode_response_outputs(resp)[0], _expected_iris("predict_proba")
    )
    assert resp.model_version  # the served version is reported


def test_large_message_within_limit_round_trips(stub) -> None:
    x = np.random.default_rng(0).random((2048, 1024), dtype=np.float32)  # 8 MiB > grpc's 4 MiB
    out = codec.decode_response_outputs(stub.ModelInfer(codec.encode_request("echo", [x])))[0]
    np.testing.assert_array_equal(out, x)


def test_big_requests_answer_like_small_ones(stub, channel) -> None:
    """Requests over codec.SPLIT_MIN_BYTES take the worker's zero-copy wire path: same answers."""
    rng = np.random.default_rng(1)
    for rows in (1, 2):
        x = rng.random((rows, 40_000), dtype=np.float32)  # 160 kB a row: over 64 KiB
        request = codec.encode_request("echo", [x], request_id=f"big-{rows}")
        request.outputs.add(name="output__0")
        request.parameters["anything"].string_param = "kept"
        response = stub.ModelInfer(request)
        assert response.id == f"big-{rows}"
        assert response.model_name == "echo"
        assert response.model_version
        assert [o.name for o in response.outputs] == ["output__0"]
        np.testing.assert_array_equal(codec.decode_response_outputs(response)[0], x)
    request = codec.encode_request("echo", [x])
    request.outputs.add(name="nope")
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    big = codec.encode_request("echo", [x]).SerializeToString()
    internal = ipb_grpc.WorkerInternalStub(channel)
    reply = internal.ForwardBatch(
        ipb.ForwardBatchRequest(items=[ipb.ForwardItem(request=big), ipb.ForwardItem(request=big)])
    )
    assert [r.code for r in reply.results] == [0, 0]
    for result in reply.results:
        out = codec.decode_response_outputs(pb.ModelInferResponse.FromString(result.response))
        np.testing.assert_array_equal(out[0], x)


def test_stream_infer_wraps_answers_and_errors(stub) -> None:
    reqs = [
        codec.encode_request("echo", [np.full((1, 3), i, np.float32)], request_id=str(i))
        for i in range(4)
    ] + [codec.encode_request("nope", [np.zeros((1, 3), np.float32)], request_id="bad")]
    answers = list(stub.ModelStreamInfer(iter(reqs)))
    assert len(answers) == 5
    errors = [a for a in answers if a.error_message]
    assert len(errors) == 1
    assert "nope" in errors[0].error_message
    for a in answers:
        if not a.error_message:
            out = codec.decode_response_outputs(a.infer_response)[0]
            assert float(out[0, 0]) == float(a.infer_response.id)


def test_metadata_config_statistics(stub) -> None:
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris_clf"))
    assert meta.platform == "sklearn"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input__0", "FP64", [-1, 4])
    ]
    config = stub.ModelConfig(pb.ModelConfigRequest(name="iris_clf")).config
    assert config.max_batch_size > 0
    assert list(config.input[0].dims) == [4]
    assert config.HasField("dynamic_batching")
    before = stub.ModelStatistics(pb.ModelStatisticsRequest(name="iris_clf")).model_stats[0]
    stub.ModelInfer(codec.encode_request("iris_clf", [X_IRIS]))
    after = stub.ModelStatistics(pb.ModelStatisticsRequest(name="iris_clf")).model_stats[0]
    assert after.inference_count - before.inference_count == len(X_IRIS)
    assert after.execution_count - before.execution_count == 1
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    assert after.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    everything = stub.ModelStatistics(pb.ModelStatisticsRequest()).model_stats
    assert {s.name for s in everything} == {"iris_clf", "echo", "picky"}
    server = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "runnerfleet"
    assert "statistics" not in server.extensions  # store versions are not integers


def test_readiness_rpcs(stub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="echo")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="nope")).ready


def test_repository_load_and_unload(stub) -> None:
    names = {m.name for m in stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert names == {"iris_clf", "echo", "picky"}
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="slow"))
    x = np.zeros((2, 4), np.float32)
    out = codec.decode_response_outputs(stub.ModelInfer(codec.encode_request("slow", [x])))[0]
    np.testing.assert_array_equal(out, x + 1)
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="slow"))
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models
    assert "slow" not in {m.name for m in index}
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="not_in_store"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not_in_store" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="slow"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_internal_forward_batch_answers_each_item(channel) -> None:
    internal = ipb_grpc.WorkerInternalStub(channel)
    good = codec.encode_request("echo", [np.ones((1, 2), np.float32)]).SerializeToString()
    missing = codec.encode_request("nope", [np.ones((1, 2), np.float32)]).SerializeToString()
    reply = internal.ForwardBatch(
        ipb.ForwardBatchRequest(
            items=[
                ipb.ForwardItem(request=good, timeout_s=10),
                ipb.ForwardItem(request=missing),
                ipb.ForwardItem(request=b"\xff\xff not a proto"),
                ipb.ForwardItem(request=good),
            ]
        )
    )
    codes = [r.code for r in reply.results]
    assert codes == [0, 5, 3, 0]  # OK, NOT_FOUND, INVALID_ARGUMENT, OK
    out = codec.decode_response_outputs(pb.ModelInferResponse.FromString(reply.results[0].response))
    np.testing.assert_array_equal(out[0], np.ones((1, 2), np.float32))
    assert "nope" in reply.results[1].message


def test_internal_describe_models(channel) -> None:
    described = ipb_grpc.WorkerInternalStub(channel).DescribeModels(ipb.DescribeModelsRequest())
    assert described.serving
    assert described.device == "cpu"
    assert described.worker_id
    iris = next(m for m in described.models if m.name == "iris_clf")
    assert iris.default_method == "predict"
    assert set(iris.methods) == {"predict", "predict_proba"}
    assert iris.config.max_batch_size > 0
    assert iris.metadata.inputs[0].datatype == "FP64"
