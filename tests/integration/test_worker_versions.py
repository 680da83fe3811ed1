"""The worker's served version is the newest by creation time; DescribeModels says what is ready."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from protos import internal_pb2 as ipb
from protos import internal_pb2_grpc as ipb_grpc
from tests.integration.gateway_helpers import save_echo_versions
from tests.support import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    home = tmp_path_factory.mktemp("versions-home")
    return home, save_echo_versions(home)


def _echo_request(version: str = "") -> pb.ModelInferRequest:
    x = np.ones((1, 2), np.float32)
    request = pb.ModelInferRequest(model_name="echo", model_version=version)
    request.inputs.add(name="input__0", datatype="FP32", shape=[1, 2])
    request.raw_input_contents.append(x.tobytes())
    return request


def _worker(home, tags: list[str]):
    handle = procs.start_worker(",".join(tags), home)
    procs.wait_serving(handle.address, 60)
    return handle


def test_empty_version_runs_the_newest_not_the_last_loaded(versions) -> None:
    home, (old, _mid, new) = versions
    handle = _worker(home, [f"echo:{new}", f"echo:{old}"])  # old is loaded last
    try:
        with grpc.insecure_channel(handle.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ModelInfer(_echo_request(), timeout=30).model_version == new
            config = stub.ModelConfig(pb.ModelConfigRequest(name="echo"), timeout=30).config
            assert config.metric_tags["version"] == new
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


def test_unloading_the_served_version_falls_back_to_the_next_newest(versions) -> None:
    home, (old, mid, new) = versions  # mid < old as strings, but created after it
    handle = _worker(home, [f"echo:{mid}", f"echo:{old}", f"echo:{new}"])
    try:
        with grpc.insecure_channel(handle.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ModelInfer(_echo_request(), timeout=30).model_version == new
            unload = pb.RepositoryModelUnloadRequest(model_name="echo")
            unload.parameters["version"].string_param = new
            stub.RepositoryModelUnload(unload, timeout=60)
            assert stub.ModelInfer(_echo_request(), timeout=30).model_version == mid
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


def test_described_models_carry_creation_time_and_are_not_ready_while_draining(
    versions,
) -> None:
    home, (old, _mid, new) = versions
    handle = _worker(home, [f"echo:{old}", f"echo:{new}"])
    try:
        with grpc.insecure_channel(handle.address) as channel:
            internal = ipb_grpc.WorkerInternalStub(channel)
            described = internal.DescribeModels(ipb.DescribeModelsRequest(), timeout=30)
            by_version = {m.version: m for m in described.models}
            assert all(m.ready for m in described.models)
            assert 0 < by_version[old].created_unix_s < by_version[new].created_unix_s
            internal.Drain(ipb.DrainRequest(), timeout=30)
            described = internal.DescribeModels(ipb.DescribeModelsRequest(), timeout=30)
            assert len(described.models) == 2
            assert not any(m.ready for m in described.models)
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]
