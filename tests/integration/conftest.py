"""Worker fixtures: a store with small models, one worker shared by a module's tests."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from tests.support import procs

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


@pytest.fixture(scope="session")
def worker_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """iris_clf, echo, picky (raises on negatives) and slow (sleeps) in a fresh store."""
    home = tmp_path_factory.mktemp("worker-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNERFLEET_HOME", str(home))
        import store
        from runnerfleet import demo_models
        from tests.support.models import Picky, Slow

        demo_models.save_iris()
        demo_models.save_echo()
        sample = np.zeros((2, 4), np.float32)
        sig = {"__call__": {"batchable": True}}
        store.save_model("pytorch", "picky", Picky(), signatures=sig, sample_input=sample)
        store.save_model("pytorch", "slow", Slow(0.05), signatures=sig, sample_input=sample)
    return home


@pytest.fixture(scope="module")
def worker(worker_store: pathlib.Path) -> Iterator[procs.ProcessHandle]:
    """A worker hosting iris_clf, echo and picky with a 16 MiB message limit."""
    handle = procs.start_worker(
        "iris_clf,echo,picky", worker_store, max_message_bytes=16 * 1024 * 1024
    )
    try:
        procs.wait_serving(handle.address, 60)
        yield handle
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


@pytest.fixture(scope="module")
def channel(worker: procs.ProcessHandle) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(worker.address, options=CHANNEL_OPTIONS) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel):
    from protos import grpc_service_pb2_grpc

    return grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
