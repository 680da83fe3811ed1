"""A torch runner on CUDA (init_local(device="cuda:0")) answers tensors on that device.

Written without a GPU at hand (no device was lent to the task that added it): run it where one is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import runnerfleet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


def test_torch_runner_on_cuda_answers_cuda_tensors(store_home):
    runnerfleet.pytorch.save_model("net", Net(), signatures={"__call__": {"batchable": True}})
    runner = runnerfleet.pytorch.get("net").to_runner()
    runner.init_local(device="cuda:0", quiet=True)
    x = np.ones((2, 4), np.float32)
    out = runner.run(x)  # numpy in, moved to the device by the adapter
    assert isinstance(out, torch.Tensor) and out.device.type == "cuda"
    expected = Net()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out.argmax(dim=1).cpu().numpy(), expected.argmax(axis=1))
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected, rtol=1e-4, atol=1e-5)
