"""The one process supervisor: ports from the port file, failures reported, stop by PID."""

from __future__ import annotations

import signal
import sys
import textwrap

import pytest

from runnerfleet.supervisor import Supervisor

pytestmark = pytest.mark.integration

# A stand-in child that follows the port-file contract without a gRPC server: it writes the
# port file it is given (after --port-file), then the ready line, then waits.
_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = sys.argv[sys.argv.index("--port-file") + 1]
    with open(path + ".tmp", "w") as f:
        json.dump({"grpc_port": 4242, "metrics_port": 4343, "pid": os.getpid()}, f)
    os.replace(path + ".tmp", path)
    print("listening grpc=127.0.0.1:4242 metrics=127.0.0.1:4343", flush=True)
    time.sleep(60)
    """
)


def test_reads_the_reported_ports_and_stops_by_pid_with_sigterm() -> None:
    sup = Supervisor()
    try:
        child = sup.start("fake", [sys.executable, "-c", _CHILD], timeout_s=30)
        assert (child.grpc_port, child.metrics_port) == (4242, 4343)
        assert child.address == "127.0.0.1:4242"
        assert "listening grpc=" in child.log
        assert sup.stop(child, grace_s=10) == -signal.SIGTERM
        assert not child.alive()
        assert sup.children == []
    finally:
        sup.close()


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    sup = Supervisor()
    try:
        child = sup.start("stubborn", [sys.executable, "-c", _CHILD, "--ignore-term"])
        assert sup.stop(child, grace_s=0.5) == -signal.SIGKILL
    finally:
        sup.close()


def test_a_child_that_never_reports_ports_is_killed_and_its_log_shown() -> None:
    sup = Supervisor()
    try:
        with pytest.raises(RuntimeError, match="did not report its ports") as err:
            sup.start("mute", [sys.executable, "-c", "print('hello', flush=True); exit(3)"])
        assert "hello" in str(err.value)
        assert "exit 3" in str(err.value)
        assert sup.children == []
    finally:
        sup.close()
