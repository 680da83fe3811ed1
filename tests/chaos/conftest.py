"""Chaos suite (`make test-chaos`): real processes on loopback under overload, hostile input and
failures. Every test asserts counts (failed requests, wrong answers, refusals, restarts), never
timings; each scenario is bounded in time (seconds to ~30 s) and request count. The scenario
engines are shared with `make bench-chaos` (bench/chaos_*.py), which runs them longer.

Fixtures here: `chaos_store` (a store with the costed and small models every scenario may use)
and `started` (a list: every process handle appended to it is stopped by PID at teardown).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.support import procs

ROW_COST_MODEL = "rowcost"  # 20 ms + 3 ms per row, answers 2x + 1 (tests.support.models.RowCost)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.chaos)


def build_chaos_store(home: pathlib.Path) -> pathlib.Path:
    """Save iris_clf, echo and rowcost into the store at `home` (RUNNERFLEET_HOME set by caller)."""
    import numpy as np

    import store
    from runnerfleet import demo_models
    from tests.support.models import RowCost

    demo_models.save_iris()
    demo_models.save_echo()
    sig = {"__call__": {"batchable": True}}
    sample = np.zeros((1, 4), np.float32)
    store.save_model("pytorch", ROW_COST_MODEL, RowCost(), signatures=sig, sample_input=sample)
    return home


@pytest.fixture(scope="session")
def chaos_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A fresh store shared by the chaos tests: iris_clf, echo and rowcost."""
    home = tmp_path_factory.mktemp("chaos-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNERFLEET_HOME", str(home))
        build_chaos_store(home)
    return home


@pytest.fixture()
def started() -> Iterator[list[procs.ProcessHandle]]:
    """Processes a test started; each still running is stopped by PID afterwards (reverse order)."""
    handles: list[procs.ProcessHandle] = []
    try:
        yield handles
    finally:
        for handle in reversed(handles):
            procs.stop(handle)
