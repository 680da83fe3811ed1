"""The event loop choice: auto is uvloop where installed, asyncio on request, bad names refused."""

from __future__ import annotations

import asyncio
import sys

import pytest

from api_gateway.settings import GatewaySettings
from protos import event_loop
from protos.errors import InvalidArgument
from runner_worker.settings import WorkerSettings, load_settings


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert event_loop.resolved("auto") == "uvloop"
    assert event_loop.run(_loop_module(), "auto").startswith("uvloop")
    assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert event_loop.resolved("asyncio") == "asyncio"
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop.resolved("auto") == "asyncio"
    assert event_loop.run(_loop_module(), "auto").startswith("asyncio")
    with pytest.raises(InvalidArgument, match="uvloop is not installed"):
        WorkerSettings(event_loop="uvloop")
    main = _loop_module()
    with pytest.raises(InvalidArgument, match="uvloop is not installed"):
        event_loop.run(main, "uvloop")
    assert main.cr_frame is None  # closed, never left pending


def test_settings_take_the_choice_from_flags_and_env_and_refuse_others() -> None:
    assert WorkerSettings().event_loop == "auto"
    assert load_settings({}, {"RUNNERFLEET_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    gw = GatewaySettings.load({"workers": "127.0.0.1:1", "event_loop": "asyncio"}, {})
    assert gw.event_loop == "asyncio"
    with pytest.raises(InvalidArgument, match="event_loop must be one of"):
        WorkerSettings(event_loop="tokio")
    with pytest.raises(InvalidArgument, match="event_loop must be one of"):
        GatewaySettings.load({"workers": "127.0.0.1:1"}, {"RUNNERFLEET_EVENT_LOOP": "trio"})
