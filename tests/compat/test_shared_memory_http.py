"""System shared memory over HTTP: tritonclient.http with tritonclient's shared-memory helper.

As Triton's simple_http_shm_client.py: create regions with ``tritonclient.utils.shared_memory``,
register them over HTTP, infer with inputs and outputs in the regions (at offsets), read the
outputs from shared memory, check status, unregister. Then the bad cases (unknown region,
regions too small, offsets out of range, unregister while requests use a region) and
``perf_analyzer -i http --shared-memory system``. Against a worker's HTTP port and through a
gateway's (client, gateway and worker share this host).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import gevent
import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.compat.test_worker_tritonclient_http import (
    http_address,
    perf_analyzer,  # noqa: F401 - the session fixture
    run_perf_analyzer,
)
from tests.integration.http_helpers import call
from tests.support import procs

pytestmark = pytest.mark.integration

OUT_BYTES = 1024  # one output region; predict at 0, predict_proba at OUT_OFFSET
OUT_OFFSET = 512
IN_OFFSET = 64  # the input sits this far into its region
CALLERS = 6  # concurrent callers (greenlets on the client's connection pool)


@pytest.fixture(params=["worker", "gateway"])
def server(request, worker, gateway) -> procs.ProcessHandle:
    return worker if request.param == "worker" else gateway


@pytest.fixture
def client(server) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(http_address(server), concurrency=8)
    c.unregister_system_shared_memory()  # a clean start, as the example does
    try:
        yield c
    finally:
        c.unregister_system_shared_memory()
        c.close()


class Regions:
    """An input and an output region (unique names and keys), destroyed at the end."""

    def __init__(self, in_bytes: int, out_bytes: int = OUT_BYTES) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.in_name, self.in_key = f"in_{suffix}", f"/rf_http_in_{suffix}"
        self.out_name, self.out_key = f"out_{suffix}", f"/rf_http_out_{suffix}"
        self.in_bytes, self.out_bytes = in_bytes, out_bytes
        self.input = shm.create_shared_memory_region(self.in_name, self.in_key, in_bytes)
        self.output = shm.create_shared_memory_region(self.out_name, self.out_key, out_bytes)

    def register(self, client: httpclient.InferenceServerClient) -> None:
        client.register_system_shared_memory(self.in_name, self.in_key, self.in_bytes)
        client.register_system_shared_memory(self.out_name, self.out_key, self.out_bytes)

    def destroy(self) -> None:
        shm.destroy_shared_memory_region(self.input)
        shm.destroy_shared_memory_region(self.output)


@pytest.fixture
def regions(expected) -> Iterator[Regions]:
    made = Regions(IN_OFFSET + expected["x_iris"].nbytes)
    shm.set_shared_memory_region(made.input, [expected["x_iris"]], offset=IN_OFFSET)
    try:
        yield made
    finally:
        made.destroy()


def _shm_input(name: str, x: np.ndarray, offset: int = IN_OFFSET) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input__0", list(x.shape), "FP64")
    tensor.set_shared_memory(name, x.nbytes, offset=offset)
    return tensor


def _shm_output(name: str, byte_size: int, offset: int = 0) -> httpclient.InferRequestedOutput:
    out = httpclient.InferRequestedOutput("output__0", binary_data=True)
    out.set_shared_memory(name, byte_size, offset=offset)
    return out


def _infer(client, regions: Regions, x: np.ndarray, method: str | None, out_offset: int):
    return client.infer(
        "iris_clf",
        [_shm_input(regions.in_name, x)],
        outputs=[_shm_output(regions.out_name, OUT_BYTES - out_offset, out_offset)],
        parameters={"method": method} if method else None,
    )


def _read_output(regions: Regions, entry: dict, offset: int) -> np.ndarray:
    dtype = {"INT64": np.int64, "FP64": np.float64}[entry["datatype"]]
    return shm.get_contents_as_numpy(regions.output, dtype, entry["shape"], offset=offset).copy()


def test_simple_http_shm_client_flow(client, regions, expected) -> None:
    assert "system_shared_memory" in client.get_server_metadata()["extensions"]
    regions.register(client)
    x = expected["x_iris"]

    result = _infer(client, regions, x, None, 0)
    # as Triton answers an output written to a region: name, datatype and shape, nothing else
    # (no data, no binary bytes, no parameters: perf_analyzer's C++ client would fail on them)
    assert result.get_response()["outputs"] == [
        {"name": "output__0", "datatype": "INT64", "shape": [x.shape[0]]}
    ]
    entry = result.get_output("output__0")
    np.testing.assert_array_equal(_read_output(regions, entry, 0), expected["y_iris_predict"])

    proba = _infer(client, regions, x, "predict_proba", OUT_OFFSET)
    (entry,) = proba.get_response()["outputs"]
    assert entry == {"name": "output__0", "datatype": "FP64", "shape": [x.shape[0], 3]}
    np.testing.assert_array_equal(
        _read_output(regions, entry, OUT_OFFSET), expected["y_iris_proba"]
    )
    # the predict answer at offset 0 is still there: the second output went after it
    first = shm.get_contents_as_numpy(regions.output, np.int64, [x.shape[0]])
    np.testing.assert_array_equal(first, expected["y_iris_predict"])

    status = client.get_system_shared_memory_status()
    assert sorted(status, key=lambda r: r["name"]) == [
        {"name": regions.in_name, "key": regions.in_key, "offset": 0,
         "byte_size": regions.in_bytes},
        {"name": regions.out_name, "key": regions.out_key, "offset": 0,
         "byte_size": OUT_BYTES},
    ]  # fmt: skip
    one = client.get_system_shared_memory_status(region_name=regions.out_name)
    assert [r["name"] for r in one] == [regions.out_name]
    client.unregister_system_shared_memory(regions.in_name)
    assert [r["name"] for r in client.get_system_shared_memory_status()] == [regions.out_name]
    client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status() == []


def _refused(call_it, status: str, needle: str) -> str:
    with pytest.raises(InferenceServerException) as info:
        call_it()
    assert info.value.status() == status, info.value.message()
    assert needle in info.value.message(), info.value.message()
    return info.value.message()


def test_bad_regions_are_clear_errors(client, server, regions, expected) -> None:
    x = expected["x_iris"]
    regions.register(client)
    # status of a region nobody registered: NOT_FOUND, 404 as Triton's HTTP front end answers
    _refused(lambda: client.get_system_shared_memory_status(region_name="ghost"), "404",
             "'ghost' is not registered")  # fmt: skip
    _refused(lambda: client.unregister_system_shared_memory("ghost"), "404", "not registered")
    _refused(lambda: client.register_system_shared_memory("ghost", "/rf_no_such_key", 64),
             "404", "does not exist")  # fmt: skip
    _refused(lambda: client.register_system_shared_memory(
        "big", regions.in_key, regions.in_bytes + 1), "400", "exceeds")  # fmt: skip
    _refused(lambda: client.register_system_shared_memory(
        regions.in_name, regions.in_key, 8), "400", "already registered")  # fmt: skip
    client.register_system_shared_memory("small", regions.in_key, 16)

    def infer(inp, out_bytes=OUT_BYTES, out_offset=0):
        out = _shm_output(regions.out_name, out_bytes, out_offset)
        return lambda: client.infer("iris_clf", [inp], outputs=[out])

    _refused(infer(_shm_input("ghost", x)), "404", "'ghost' is not registered")
    _refused(infer(_shm_input("small", x)), "400", "past the end")  # region smaller than x
    _refused(infer(_shm_input(regions.in_name, x, offset=regions.in_bytes)), "400", "past")
    _refused(infer(_shm_input(regions.in_name, x), out_bytes=8), "400",
             f"needs {expected['y_iris_predict'].nbytes} bytes")  # fmt: skip
    _refused(infer(_shm_input(regions.in_name, x), out_bytes=64, out_offset=OUT_BYTES), "400",
             "past the end")  # fmt: skip
    _refused(client.get_cuda_shared_memory_status, "501", "CUDA shared memory")

    port = int(http_address(server).rsplit(":", 1)[1])
    register = "/v2/systemsharedmemory/region/x/register"
    both = {"name": "input__0", "shape": [1, 4], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.0],
            "parameters": {"shared_memory_region": regions.in_name,
                           "shared_memory_byte_size": 32}}  # fmt: skip
    for method, path, body, status, needle in [
        ("POST", register, {"key": regions.in_key}, 400, "'byte_size'"),
        ("POST", register, {"key": regions.in_key, "byte_size": -1}, 400, "non-negative"),
        ("POST", register, None, 400, "'key' string"),
        ("GET", register, None, 405, "Method Not Allowed"),
        ("POST", "/v2/models/iris_clf/infer", {"inputs": [both]}, 400, "send one"),
    ]:
        reply = call(port, method, path, None if body is None else json.dumps(body).encode())
        assert (reply.status, needle in reply.json()["error"]) == (status, True), reply.body

    # after all of that, the regions still serve a good request
    result = _infer(client, regions, x, None, 0)
    (entry,) = result.get_response()["outputs"]
    np.testing.assert_array_equal(_read_output(regions, entry, 0), expected["y_iris_predict"])


def test_unregister_while_requests_use_the_region(client, server, regions, expected) -> None:
    x = expected["x_iris"]
    regions.register(client)
    answered: list[np.ndarray] = []
    refused: list[InferenceServerException] = []

    def keep_calling() -> None:  # one caller: infer through the regions until refused
        for _ in range(2000):
            try:
                result = _infer(client, regions, x, None, 0)
            except InferenceServerException as exc:
                refused.append(exc)
                return
            answered.append(_read_output(regions, result.get_output("output__0"), 0))

    callers = [gevent.spawn(keep_calling) for _ in range(CALLERS)]
    deadline_s = time.monotonic() + 30
    while len(answered) < 4 * CALLERS:  # requests are flowing on every connection
        assert not refused, refused[0].message()
        assert time.monotonic() < deadline_s, "the callers' requests did not flow"
        gevent.sleep(0.005)
    other = httpclient.InferenceServerClient(http_address(server))  # its own connection
    try:
        other.unregister_system_shared_memory(regions.in_name)  # while the callers go on
    finally:
        other.close()
    gevent.joinall(callers, timeout=60)
    assert len(refused) == CALLERS  # every caller was refused once the region was gone
    for exc in refused:  # cleanly: NOT_FOUND naming the region, never a 500 or a crash
        assert exc.status() == "404", exc.message()
        assert regions.in_name in exc.message()
    for got in answered:
        np.testing.assert_array_equal(got, expected["y_iris_predict"])
    _refused(lambda: _infer(client, regions, x, None, 0), "404", "not registered")
    client.register_system_shared_memory(regions.in_name, regions.in_key, regions.in_bytes)
    (entry,) = _infer(client, regions, x, None, 0).get_response()["outputs"]
    np.testing.assert_array_equal(_read_output(regions, entry, 0), expected["y_iris_predict"])


def _throughput(stdout: str) -> float:
    match = re.search(r"Throughput: ([0-9.]+) infer/sec", stdout)
    assert match, stdout[-3000:]
    return float(match.group(1))


@pytest.mark.slow
def test_perf_analyzer_http_shared_memory_system(perf_analyzer, server) -> None:  # noqa: F811
    extra = ("--shared-memory", "system", "--output-shared-memory-size", "4096")
    result = run_perf_analyzer(perf_analyzer, http_address(server), "iris_clf", *extra)
    if result.returncode != 0 and "stable measurement" in result.stdout + result.stderr:
        # the protocol worked; a shared, noisy machine kept the 10% stability rule from holding
        result = run_perf_analyzer(perf_analyzer, http_address(server), "iris_clf", *extra,
                                   "--stability-percentage", "100")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in (result.stdout + result.stderr).lower(), result.stdout[-3000:]
    assert _throughput(result.stdout) > 0
