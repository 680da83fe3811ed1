"""Workers on CUDA: batches go to the GPU once and come back once; device pinning is honoured."""

from __future__ import annotations

import asyncio
import os

import grpc
import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def heavy_tag(store_home) -> str:
    from runnerfleet import demo_models

    return str(demo_models.save_heavy_mlp())


def test_runner_on_cuda_matches_cpu_and_runs_one_call_per_batch(heavy_tag) -> None:
    import store
    from runner_worker.batcher import Batcher, BatchPolicy
    from runner_worker.runner import ModelRunner

    x = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    want = store.get(heavy_tag).load_runnable("cpu").methods["__call__"](x)

    async def main() -> tuple[list[np.ndarray], int]:
        runner = ModelRunner(store.get(heavy_tag), "cuda:0")
        await runner.load()
        calls = 0
        run = runner.run

        async def counted(method, arrays):
            nonlocal calls
            calls += 1
            return await run(method, arrays)

        b = Batcher(lambda arrays: counted("__call__", arrays), BatchPolicy(max_batch_size=64))
        outs = await asyncio.gather(*(b.submit([x[i : i + 1]]) for i in range(32)))
        await b.close()
        runner.close()
        return [o[0] for o in outs], calls

    outs, calls = asyncio.run(main())
    np.testing.assert_allclose(np.concatenate(outs), want, rtol=1e-3, atol=1e-4)
    assert calls < 32  # rows were batched: one host->device copy per batch, not per request


def test_cuda_worker_serves_and_describes_its_device(heavy_tag, store_home) -> None:
    import store
    from protos import codec
    from protos import grpc_service_pb2 as pb
    from protos import grpc_service_pb2_grpc as pb_grpc
    from protos import internal_pb2 as ipb
    from protos import internal_pb2_grpc as ipb_grpc
    from protos import model_config_pb2 as mc
    from tests.support import procs

    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    want = store.get(heavy_tag).load_runnable("cpu").methods["__call__"](x)
    handle = procs.start_worker(heavy_tag, store_home, device="cuda:0")
    try:
        procs.wait_serving(handle.address, 120)
        with grpc.insecure_channel(handle.address) as ch:
            stub = pb_grpc.GRPCInferenceServiceStub(ch)
            out = codec.decode_response_outputs(
                stub.ModelInfer(codec.encode_request("heavy_mlp", [x]))
            )
            np.testing.assert_allclose(out[0], want, rtol=1e-3, atol=1e-4)
            group = stub.ModelConfig(pb.ModelConfigRequest(name="heavy_mlp")).config.instance_group[
                0
            ]
            assert group.kind == mc.ModelInstanceGroup.KIND_GPU
            assert list(group.gpus) == [0]
            described = ipb_grpc.WorkerInternalStub(ch).DescribeModels(ipb.DescribeModelsRequest())
            assert described.device == "cuda:0"
    finally:
        assert procs.stop(handle) == 0, handle.log[-2000:]


def test_inherited_cuda_visible_devices_is_honoured(heavy_tag, store_home) -> None:
    from tests.support import procs

    last = torch.cuda.device_count() - 1
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(last))
    handle = procs.start_worker(heavy_tag, store_home, device="cuda:0", env=env)
    try:
        procs.wait_serving(handle.address, 120)
    finally:
        procs.stop(handle)
    bad = procs.start_worker(heavy_tag, store_home, device="cuda:1", env=env)
    try:
        assert bad.proc.wait(120) != 0
        assert "CUDA device(s) are visible" in bad.log
    finally:
        procs.stop(bad)
