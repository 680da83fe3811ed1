"""Closed-loop iris clients for the partition test, run inside the gateway's network namespace.

    python -m tests.chaos.partition_load GATEWAY_ADDRESS CLIENTS DEADLINE_S

Prints one JSON line with the counts so far ({"ok", "failed", "wrong", "failures"}) every
0.2 s, and a last one when it gets SIGTERM (then it exits 0). The namespace has no route to
the test's own, so the test reads the counts from this process's output.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from bench.chaos_resilience import IRIS_X, ClosedLoop


def main() -> int:
    address, clients, deadline_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    from runnerfleet.client import Client

    with Client(address, timeout_s=30) as client:
        expected = client.infer("iris_clf", IRIS_X)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    load = ClosedLoop([address], clients, expected, deadline_s=deadline_s)

    def report() -> None:
        c = load.counts
        line = {"ok": c.ok, "failed": c.failed, "wrong": c.wrong, "failures": c.failures}
        print(json.dumps(line), flush=True)

    with load:
        while not stop.wait(0.2):
            report()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
