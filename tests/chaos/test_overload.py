"""Overload: 3x and 10x capacity against 2 workers behind a gateway, counts checked.

The scenario engine is bench/chaos_overload.py (`make bench-chaos` runs it for 30 s per
phase); here each phase runs ~8 s of open-loop load at N x the capacity measured first.
Asserted (counts, never timings): every scheduled request was sent; no wrong answer; the
excess is refused with RESOURCE_EXHAUSTED rather than queued until it times out (refusals
happen, and every failure a client sees is RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED); the
cluster keeps answering correctly under load (at 3x, goodput is a fraction of the capacity
measured in the same run) and a lone client is served again right after; RSS stays bounded.
Misses of admitted requests are counted and printed (the bench reports them against the
targets); on a shared 2-core CI machine they depend on CPU contention, so they are not
asserted here.
"""

from __future__ import annotations

import json
import pathlib

from bench.chaos_overload import run_overload

PHASE_S = 8.0
MIN_GOODPUT_FRACTION = 0.2  # of the capacity measured in the same run (bench target: 0.9)
# at 10x on a shared 2-core machine the Python front ends run out of CPU before admission
# sees the requests (docs/ADMISSION.md, failure modes): goodput is reported, not asserted
GOODPUT_ASSERTED_UP_TO = 3.0
MAX_RSS_GROWTH_MIB = 200.0


def test_overload_is_refused_not_queued_and_answers_stay_exact(chaos_store: pathlib.Path) -> None:
    res = run_overload(chaos_store, phase_s=PHASE_S, capacity_s=3.0)
    print(json.dumps(res, indent=1))
    capacity_rps = res["capacity_rps"]
    assert capacity_rps > 0
    assert res["capacity"]["wrong"] == 0
    for name, phase in res["phases"].items():
        # open loop: every scheduled request was sent and has exactly one outcome
        assert phase["sent"] == round(phase["offered_rps"] * PHASE_S), (name, phase)
        assert phase["wrong"] == 0, (name, phase)
        assert phase["refused"] > 0, (name, phase)  # the excess is refused, not queued
        # CANCELLED answers come from the gateway's forward path under 10x (see the report of
        # issue 10 part A); every other failure a client sees is refusal or deadline
        assert set(phase["codes"]) <= {"CANCELLED"}, (name, phase["codes"], phase["samples"])
        if phase["factor"] <= GOODPUT_ASSERTED_UP_TO:
            floor = MIN_GOODPUT_FRACTION * capacity_rps * phase["elapsed_s"]
            assert phase["ok"] >= floor, (name, phase)
        after = phase["after"]
        assert after["sent"] > 0, (name, after)
        assert after["ok"] == after["sent"], (name, after)
    for proc, mib in res["rss_after_mib"].items():
        assert mib - res["rss_before_mib"][proc] < MAX_RSS_GROWTH_MIB, (proc, res["rss_after_mib"])
