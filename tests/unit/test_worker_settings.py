"""Worker settings: flags over RUNNERFLEET_* env over defaults; device pinning env."""

from __future__ import annotations

import os

import pytest

from protos.errors import InvalidArgument
from runner_worker.device import THREAD_ENV_VARS, intra_op_threads, pin_process
from runner_worker.settings import WorkerSettings, load_settings, parse_cpus


def test_flags_override_env_override_defaults() -> None:
    env = {
        "RUNNERFLEET_MAX_MESSAGE_BYTES": "1048576",
        "RUNNERFLEET_MAX_BATCH_SIZE": "8",
        "RUNNERFLEET_MODELS": "a,b:v1",
    }
    s = load_settings({"max_batch_size": 16, "port": None}, env)
    assert s.max_batch_size == 16
    assert s.max_message_bytes == 1048576
    assert s.models == ("a", "b:v1")
    assert load_settings({}, {}).max_message_bytes == 256 * 1024 * 1024
    assert load_settings({}, {}).port == WorkerSettings().port


def test_invalid_values_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="cuda:N"):
        WorkerSettings(device="gpu")
    with pytest.raises(InvalidArgument):
        WorkerSettings(max_batch_size=0)
    with pytest.raises(InvalidArgument):
        parse_cpus("a-b")
    assert parse_cpus("0-2,5") == (0, 1, 2, 5)
    assert WorkerSettings(device="cuda:3").cuda_index == 3


def test_pin_process_hides_gpus_and_exports_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CUDA_VISIBLE_DEVICES", *THREAD_ENV_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append(set(cpus)))
    calls: list[set[int]] = []
    pin_process(WorkerSettings(device="cpu", threads=2, cpus=(0,)))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert all(os.environ[v] == "2" for v in THREAD_ENV_VARS)
    assert calls == [{0}]


def test_cuda_device_keeps_inherited_visibility(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pin_process(WorkerSettings(device="cuda:1"))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_threads_default_to_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CUDA_VISIBLE_DEVICES", "OMP_WAIT_POLICY", *THREAD_ENV_VARS):
        monkeypatch.delenv(var, raising=False)  # restored after the test
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: None)
    assert intra_op_threads(WorkerSettings(cpus=(0, 1, 2, 3))) == 4
    assert intra_op_threads(WorkerSettings(cpus=(5,))) == 1
    assert intra_op_threads(WorkerSettings(threads=2, cpus=(0,))) == 2
    assert intra_op_threads(WorkerSettings(threads=0)) is None  # the libraries' own default
    pin_process(WorkerSettings(cpus=(0, 1)))
    assert all(os.environ[v] == "2" for v in THREAD_ENV_VARS)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_exported_omp_wait_policy_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CUDA_VISIBLE_DEVICES", *THREAD_ENV_VARS):
        monkeypatch.delenv(var, raising=False)  # restored after the test
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    pin_process(WorkerSettings(threads=1))
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    pin_process(WorkerSettings(threads=1, omp_wait_policy="default"))
    assert "OMP_WAIT_POLICY" not in os.environ
    with pytest.raises(InvalidArgument, match="omp_wait_policy"):
        WorkerSettings(omp_wait_policy="spin")
    with pytest.raises(InvalidArgument, match="threads"):
        WorkerSettings(threads=-1)
