"""Fuzz: ~2,000 fuzzed requests (1,000 per target) against a worker and a gateway in front of
it (bench/chaos_fuzz.py; `make bench-chaos` sends 10,000). Asserted: no UNKNOWN or INTERNAL
and no call stalled into the client's timeout for any of them, good clients running
alongside get exact answers only, the worker logs no traceback, its peak RSS stays bounded.
"""

from __future__ import annotations

import json
import pathlib

from bench.chaos_fuzz import BAD_CODES, run_fuzz

COUNT_PER_TARGET = 1000
MAX_RSS_GROWTH_MIB = 200.0


def test_fuzzed_requests_get_input_errors_and_good_clients_stay_exact(
    chaos_store: pathlib.Path,
) -> None:
    res = run_fuzz(chaos_store, count=COUNT_PER_TARGET, seed=1)
    print(json.dumps(res, indent=1))
    for name in ("worker", "gateway"):
        r = res[name]
        assert sum(r["codes"].values()) == COUNT_PER_TARGET
        assert not any(r["codes"].get(c) for c in BAD_CODES), (name, r)
        assert set(r["good"]) == {"ok"}, (name, r["good"])
        assert r["worker_rss_growth_mib"] < MAX_RSS_GROWTH_MIB, (name, r)
    assert res["worker_tracebacks"] == 0
