"""tritonclient's system shared-memory example flow, and perf_analyzer --shared-memory system.

As Triton's simple_grpc_shm_client.py: create regions with ``tritonclient.utils.shared_memory``,
register them, infer with inputs and outputs in the regions, read the outputs from shared
memory, unregister. Against a worker directly and through a gateway (same host).
"""

from __future__ import annotations

import subprocess
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.compat import perf_analyzer_setup

pytestmark = pytest.mark.integration


@pytest.fixture(params=["worker", "gateway"])
def address(request, worker, gateway) -> str:
    return worker.address if request.param == "worker" else gateway.address


def _run_example(address: str, x: np.ndarray, model: str, method: str | None) -> np.ndarray:
    client = grpcclient.InferenceServerClient(address)
    suffix = uuid.uuid4().hex[:8]
    in_handle = shm.create_shared_memory_region(f"in_{suffix}", f"/rf_in_{suffix}", x.nbytes)
    out_bytes = 1024
    out_handle = shm.create_shared_memory_region(f"out_{suffix}", f"/rf_out_{suffix}", out_bytes)
    try:
        client.unregister_system_shared_memory()
        shm.set_shared_memory_region(in_handle, [x])
        client.register_system_shared_memory(f"in_{suffix}", f"/rf_in_{suffix}", x.nbytes)
        client.register_system_shared_memory(f"out_{suffix}", f"/rf_out_{suffix}", out_bytes)
        status = client.get_system_shared_memory_status(as_json=True)
        assert {r["name"] for r in status["regions"].values()} >= {f"in_{suffix}"}
        inp = grpcclient.InferInput("input__0", list(x.shape), "FP64")
        inp.set_shared_memory(f"in_{suffix}", x.nbytes)
        out = grpcclient.InferRequestedOutput("output__0")
        out.set_shared_memory(f"out_{suffix}", out_bytes)
        params = {"method": method} if method else None
        result = client.infer(model, [inp], outputs=[out], parameters=params)
        tensor = result.get_output("output__0")
        dtype = {"INT64": np.int64, "FP64": np.float64}[tensor.datatype]
        got = shm.get_contents_as_numpy(out_handle, dtype, list(tensor.shape)).copy()
        client.unregister_system_shared_memory(f"in_{suffix}")
        client.unregister_system_shared_memory(f"out_{suffix}")
        return got
    finally:
        shm.destroy_shared_memory_region(in_handle)
        shm.destroy_shared_memory_region(out_handle)
        client.close()


def test_shm_example_matches_bytes_path(address, expected) -> None:
    x = np.ascontiguousarray(expected["x_iris"], dtype=np.float64)
    got = _run_example(address, x, "iris_clf", None)
    np.testing.assert_array_equal(got, expected["y_iris_predict"])
    proba = _run_example(address, x, "iris_clf", "predict_proba")
    np.testing.assert_array_equal(proba, expected["y_iris_proba"])


def test_shm_errors_reach_the_client(address) -> None:
    client = grpcclient.InferenceServerClient(address)
    try:
        with pytest.raises(InferenceServerException, match="does not exist"):
            client.register_system_shared_memory("ghost", "/rf_no_such_key", 64)
        x = np.zeros((2, 4), np.float64)
        inp = grpcclient.InferInput("input__0", [2, 4], "FP64")
        inp.set_shared_memory("ghost", x.nbytes)
        with pytest.raises(InferenceServerException, match="not registered"):
            client.infer("iris_clf", [inp])
        with pytest.raises(InferenceServerException, match="CUDA shared memory"):
            client.get_cuda_shared_memory_status()
        meta = client.get_server_metadata(as_json=True)
        assert "system_shared_memory" in meta["extensions"]
    finally:
        client.close()


@pytest.fixture(scope="session")
def perf_analyzer() -> perf_analyzer_setup.PerfAnalyzer:
    try:
        return perf_analyzer_setup.ensure()
    except Exception as exc:  # noqa: BLE001 - no network or no wheel: skip, saying why
        pytest.skip(f"perf_analyzer could not be downloaded: {exc}")


@pytest.mark.slow
def test_perf_analyzer_shared_memory_system(perf_analyzer, address) -> None:
    argv = [
        str(perf_analyzer.binary), "-m", "iris_clf", "-u", address, "-i", "grpc",
        "--shared-memory", "system", "--output-shared-memory-size", "4096",
        "--measurement-interval", "500", "--stability-percentage", "100",
    ]  # fmt: skip
    result = subprocess.run(
        argv, env=perf_analyzer.env(), capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Throughput:" in result.stdout
