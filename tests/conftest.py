"""Shared fixtures. Never imports protos/ or tritonclient (tests/compat runs in its own process)."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture
def store_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh, empty model store for one test (RUNNERFLEET_HOME points at it)."""
    home = tmp_path / "rfhome"
    home.mkdir()
    monkeypatch.setenv("RUNNERFLEET_HOME", str(home))
    return home
