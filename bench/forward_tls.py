"""TLS overhead on the forward hop: client -> gateway -> worker, plaintext vs mTLS, one run.

Two identical pairs from one throwaway store: gateway A -> worker A in plaintext, gateway B ->
worker B over mTLS (certificates from `runnerfleet certs`, the gateway presenting its
`runnerfleet-gateway` certificate). The client -> gateway hop is plaintext on both, so the
difference is the forward hop. The shared load generator (`bench/loadgen.py`) runs against A
and B alternately (`--repeats`, medians) and prints requests/s, p50, p99 and B/A ratios.
Usage: `python -m bench.forward_tls [--concurrency 16] [--duration-s 5] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.gateway_bench import load_point, median_point
from runnerfleet.supervisor import Supervisor, cli_command, flag_argv, wait_serving

__all__ = ["main"]


def _wait_tls_serving(address: str, certs: pathlib.Path, timeout_s: float) -> None:
    creds = grpc.ssl_channel_credentials(
        (certs / "ca" / "ca.crt").read_bytes(),
        (certs / "client" / "tls.key").read_bytes(),
        (certs / "client" / "tls.crt").read_bytes(),
    )
    deadline = time.monotonic() + timeout_s
    with grpc.secure_channel(address, creds) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=timeout_s, wait_for_ready=True
        )
        for reply in stream:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                stream.cancel()
                return
            if time.monotonic() > deadline:
                break
    raise TimeoutError(f"{address} not SERVING over TLS within {timeout_s} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs; medians")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rf-tlsbench-") as home:
        env = {**os.environ, "RUNNERFLEET_HOME": home}
        code = "from runnerfleet import demo_models as d; d.save_iris()"
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        certs = pathlib.Path(home) / "certs"
        subprocess.run([*cli_command("certs", "--out", str(certs))], check=True, env=env)
        server = {"tls_cert": certs / "server/tls.crt", "tls_key": certs / "server/tls.key"}
        supervisor = Supervisor(env=env, own_session=True)
        try:
            base = ["--models", "iris_clf", "--host", "127.0.0.1", "--port", "0"]
            base += ["--metrics-port", "0", "--threads", "1"]
            plain_w = supervisor.start("worker-plain", cli_command("worker", *base))
            tls_w = supervisor.start(
                "worker-tls",
                cli_command("worker", *base, *flag_argv(
                    {**server, "tls_client_ca": certs / "ca/ca.crt"})),
            )  # fmt: skip
            wait_serving(plain_w.address, 300)
            _wait_tls_serving(tls_w.address, certs, 300)
            gw = ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"]
            plain_g = supervisor.start(
                "gateway-plain", cli_command("gateway", *gw, "--workers", plain_w.address)
            )
            tls_flags = {
                "worker_tls_ca": certs / "ca/ca.crt",
                "worker_tls_cert": certs / "gateway/tls.crt",
                "worker_tls_key": certs / "gateway/tls.key",
            }
            tls_g = supervisor.start(
                "gateway-tls",
                cli_command("gateway", *gw, "--workers", tls_w.address, *flag_argv(tls_flags)),
            )
            wait_serving(plain_g.address, 120)
            wait_serving(tls_g.address, 120)
            runs: dict[str, list[dict]] = {"plaintext": [], "tls": []}
            for _ in range(args.repeats):  # alternate, so drift hits both alike
                for name, child in (("plaintext", plain_g), ("tls", tls_g)):
                    point = load_point(
                        child.address, "iris_clf", args.concurrency, args.duration_s, home
                    )
                    runs[name].append(point)
        finally:
            supervisor.close()
    row = {"concurrency": args.concurrency, **{k: median_point(v) for k, v in runs.items()}}
    p, t = row["plaintext"], row["tls"]
    row["tls_over_plaintext_rps"] = t["rps"] / p["rps"] if p["rps"] else float("nan")
    print(
        f"iris_clf c={args.concurrency}: plaintext {p['rps']:.0f} req/s p50 {p['p50_ms']:.2f} "
        f"p99 {p['p99_ms']:.2f} ms | mTLS {t['rps']:.0f} req/s p50 {t['p50_ms']:.2f} p99 "
        f"{t['p99_ms']:.2f} ms | throughput ratio {row['tls_over_plaintext_rps']:.3f} "
        f"p50 {t['p50_ms'] - p['p50_ms']:+.2f} ms | errors {p['errors']}/{t['errors']}",
        flush=True,
    )
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
