"""PyTorch models in the store on CUDA: saved on one device, loaded on another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import runnerfleet
import store

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_saved_on_cuda_loads_on_cpu_and_cuda(store_home):
    torch.manual_seed(0)
    module = torch.nn.Linear(8, 3).cuda()
    x = np.ones((4, 8), dtype=np.float32)
    m = runnerfleet.pytorch.save_model(
        "lin_cuda", module, signatures={"__call__": {"batchable": True}}, sample_input=x
    )
    assert m.info.signatures["__call__"].output_spec[0].shape == (-1, 3)
    expected = module(torch.from_numpy(x).cuda()).detach().cpu().numpy()
    on_cpu = store.get(m.tag).load_runnable("cpu").methods["__call__"](x)
    on_gpu = store.get(m.tag).load_runnable("cuda:0").methods["__call__"](x)
    assert isinstance(on_gpu, np.ndarray)  # numpy on the CPU whatever the device
    np.testing.assert_allclose(on_cpu, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_gpu, expected, rtol=1e-5, atol=1e-6)
    assert next(runnerfleet.pytorch.load_model(m.tag, device="cpu").parameters()).is_cpu


def test_saved_on_cpu_runs_on_cuda(store_home):
    from runnerfleet import demo_models

    tag = demo_models.save_heavy_mlp()
    runner = runnerfleet.models.get(tag).to_runner()
    runner.init_local("cuda")
    x = np.random.default_rng(0).random((16, 64), dtype=np.float32)
    cpu = store.get(tag).load_runnable("cpu").methods["__call__"](x)
    np.testing.assert_allclose(runner.run(x), cpu, rtol=1e-3, atol=1e-4)
