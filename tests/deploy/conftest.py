"""Fixtures for tests/deploy (helpers live in deploy_support.py, a uniquely named module,
so `import` never picks up another folder's conftest)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from deploy_support import VENV_BIN, LocalCompose


@pytest.fixture(scope="session")
def compose_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCompose]:
    """The compose file's project services running as local processes (session-wide)."""
    runnerfleet = VENV_BIN / "runnerfleet"
    probe = subprocess.run(
        [str(runnerfleet), "worker", "--help"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        msg = f"`runnerfleet worker` is not usable yet:\n{probe.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    cluster = LocalCompose(tmp_path_factory.mktemp("compose"))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
