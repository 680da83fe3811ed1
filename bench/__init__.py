"""RunnerFleet's benchmark harness: RunnerFleet side by side with its limits and its peers.

`python -m bench.harness --quick|--full|--smoke` (or `make bench-quick` / `make bench`) serves the
same models (same weights) in-process, behind a bare grpcio server, in a RunnerFleet worker, in a
RunnerFleet cluster (gateway + 1 and + 2 workers), in MLServer and in Triton (PyTriton), loads
each with one asyncio tritonclient load generator (bench/loadgen.py, its own process) and with
Triton's perf_analyzer where the server supports it, then writes BENCHMARKS.md,
bench/results/latest.json and PNG plots. See bench/harness.py.
"""
