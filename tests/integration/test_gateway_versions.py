"""Through the gateway, a request without a version gets the served version everywhere.

The served version is the newest by the store's creation time (store/versions.py), on the
worker and in the gateway, so ModelInfer runs the version ModelConfig/ModelMetadata describe.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.gateway_helpers import save_echo_versions
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One worker hosting echo:old and echo:mid (mid is newer but sorts before old)."""
    home = tmp_path_factory.mktemp("gw-versions")
    old, mid, _new = save_echo_versions(home)
    worker = procs.start_worker(f"echo:{old},echo:{mid}", home)
    gateway = None
    try:
        procs.wait_serving(worker.address, 60)
        gateway = start_gateway([worker.address])
        yield {"worker": worker, "gateway": gateway, "old": old, "mid": mid}
    finally:
        for handle in [gateway, worker]:
            if handle is not None:
                procs.stop(handle)


def _stub(address: str) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))


def _infer_version(stub: pb_grpc.GRPCInferenceServiceStub) -> str:
    request = pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="input__0", datatype="FP32", shape=[1, 2])
    request.raw_input_contents.append(np.ones((1, 2), np.float32).tobytes())
    return str(stub.ModelInfer(request, timeout=30).model_version)


def test_infer_and_describe_agree_on_the_newest_version(cluster) -> None:
    stub = _stub(cluster["gateway"].address)
    config = stub.ModelConfig(pb.ModelConfigRequest(name="echo"), timeout=30).config
    assert config.metric_tags["version"] == cluster["mid"]
    assert _infer_version(stub) == cluster["mid"]
    assert stub.ModelReady(pb.ModelReadyRequest(name="echo"), timeout=30).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="echo"), timeout=30)
    assert sorted(metadata.versions) == sorted([cluster["old"], cluster["mid"]])
    pinned = stub.ModelConfig(pb.ModelConfigRequest(name="echo", version=cluster["old"]))
    assert pinned.config.metric_tags["version"] == cluster["old"]


def test_gateway_and_worker_report_the_same_server_version(cluster) -> None:
    request = pb.ServerMetadataRequest()
    via_gateway = _stub(cluster["gateway"].address).ServerMetadata(request, timeout=30)
    direct = _stub(cluster["worker"].address).ServerMetadata(request, timeout=30)
    assert (via_gateway.name, via_gateway.version) == (direct.name, direct.version)
