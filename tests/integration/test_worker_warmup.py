"""The worker's ``warmup`` setting: methods with an input spec run once at load, or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.support import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A store holding `calllog`, a model that logs each call to a file, and that file."""
    home = tmp_path_factory.mktemp("warmup-home")
    log_path = home / "calls.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNERFLEET_HOME", str(home))
        import store
        from tests.support.models import CallLog

        sig = {"__call__": {"batchable": True}}
        sample = np.zeros((2, 3), np.float32)
        store.save_model(
            "pytorch", "calllog", CallLog(str(log_path)), signatures=sig, sample_input=sample
        )
    return home, log_path


def _calls_at_load(home, log_path, warmup: str) -> list[str]:
    log_path.write_text("")  # forget the call save_model made to infer the specs
    env = dict(os.environ, RUNNERFLEET_WARMUP=warmup)
    handle = procs.start_worker("calllog", home, env=env)
    try:
        procs.wait_serving(handle.address, 60)  # SERVING: loading (and warm-up) is over
        return log_path.read_text().splitlines()
    finally:
        assert procs.stop(handle) == 0, handle.log[-3000:]


def test_warmup_runs_each_method_once_on_spec_shaped_zeros(logged) -> None:
    assert _calls_at_load(*logged, warmup="1") == ["(1, 3)"]  # any-size batch dim -> 1


def test_warmup_disabled_runs_nothing_at_load(logged) -> None:
    assert _calls_at_load(*logged, warmup="0") == []
