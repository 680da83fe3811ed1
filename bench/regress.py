"""Regression check: this tree's gateway + 1 worker beside another git revision's, in one run.

`python -m bench.regress --base af2355c [--models iris_clf,heavy_mlp] [--concurrency 1,16,64]
[--duration-s 4] [--repeats 3] [--json out.json]`

The base revision is checked out once as a git worktree under `.cache/regress/<sha>` (kept for
later runs; `--new REV` does the same for the other side, default: this working tree). Each side
gets its own throwaway store seeded by its own `runnerfleet.demo_models`, and one worker and one
gateway started from its own tree (cwd and `PYTHONPATH` = that tree, the same interpreter),
on port 0 with `--port-file` (`runnerfleet.supervisor`). Both clusters stay up for the whole
run. Every point is measured with this tree's load generator (`bench/loadgen.py`, its own
process), the two sides back to back in each repeat, the order alternating between repeats so
drift hits both alike. The table gives req/s median [min-max] per side, the ratio new/base per
repeat (same repeat, adjacent windows) and its median, p50/p99 medians (base/new), the CPU per
request of the gateway and of the worker process apart (ms, from /proc), the mean batch
the worker ran (its ModelStatistics), and the share of the machine's CPU time the hypervisor
stole while the point ran (`/proc/stat`; on a shared host the noise no repeat averages away).

`--control` starts a third cluster from the base revision ("control": its own store, worker and
gateway) and measures it in every repeat beside the other two, the order rotating. Its ratio
control/base per repeat is an A/A test: how far two identical clusters differ in adjacent
windows on this machine in this run. A point is a regression beyond noise only when new/base
(median) is below the lowest control/base ratio of the same point; above the highest, faster.

`--profile MODEL:C` runs one more window per side at that point while `py-spy record
--nonblocking` samples the gateway and the worker, and prints `bench.profile`'s digest of each
(buckets by innermost frame, hottest project functions); the raw stacks go to `--profile-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from bench import profile
from bench.proc_stat import machine_ticks, steal_share
from runnerfleet.supervisor import Supervisor, cli_command, wait_serving

__all__ = ["main"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
_MODELS = {  # name -> (datatype, request shape, the demo_models function that seeds it)
    "iris_clf": ("FP64", "1,4", "save_iris"),
    "heavy_mlp": ("FP32", "1,64", "save_heavy_mlp"),
}
_START_TIMEOUT_S = 180.0


@dataclass
class Side:
    """One tree's cluster: its label, tree, revision, supervisor, worker and gateway addresses."""

    label: str
    tree: pathlib.Path
    rev: str
    supervisor: Supervisor | None = None
    worker: str = ""
    gateway: str = ""
    gateway_pid: int = 0
    worker_pid: int = 0


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True)
    return out.stdout.decode().strip()


def checkout(rev: str) -> pathlib.Path:
    """A worktree of `rev` under .cache/regress/<sha> (made once, detached, reused after)."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dest = ROOT / ".cache" / "regress" / sha[:12]
    if not (dest / "runnerfleet").is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "add", "--detach", "--force", str(dest), sha)
    return dest


def _tree_env(tree: pathlib.Path, home: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "RUNNERFLEET_HOME": home}
    env.pop("RUNNERFLEET_MODELS", None)
    return env


def start_side(side: Side, models: list[str], home: str) -> None:
    """Seed `home` from the side's own code, then start its worker and gateway (port 0)."""
    env = _tree_env(side.tree, home)
    calls = "; ".join(f"d.{_MODELS[m][2]}()" for m in models)
    code = f"from runnerfleet import demo_models as d; {calls}"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=side.tree)
    side.supervisor = sup = Supervisor(env=env, cwd=side.tree, own_session=True)
    host = ["--host", "127.0.0.1"]
    worker = sup.start(
        f"{side.label}-worker",
        cli_command("worker", "--models", ",".join(models), "--port", "0", "--metrics-port", "0")
        + host,
        timeout_s=_START_TIMEOUT_S,
    )
    wait_serving(worker.address, _START_TIMEOUT_S)
    gateway = sup.start(
        f"{side.label}-gateway",
        cli_command("gateway", "--workers", worker.address, "--port", "0", "--metrics-port", "0")
        + host,
        timeout_s=_START_TIMEOUT_S,
    )
    wait_serving(gateway.address, _START_TIMEOUT_S)
    side.worker, side.gateway = worker.address, gateway.address
    side.gateway_pid, side.worker_pid = gateway.pid, worker.pid


def stop_side(side: Side) -> None:
    if side.supervisor is None:
        return
    children = side.supervisor.children
    gateways = [c for c in children if c.name.endswith("gateway")]
    side.supervisor.stop_many(gateways, grace_s=10.0)
    side.supervisor.stop_many([c for c in children if c not in gateways], grace_s=10.0)
    side.supervisor.close()


def load(side: Side, model: str, concurrency: int, a: argparse.Namespace, out_dir: str) -> dict:
    """One window of this tree's load generator against the side's gateway: its point."""
    datatype, shape, _ = _MODELS[model]
    out = pathlib.Path(out_dir) / f"{side.label}-{model}-{concurrency}.json"
    argv = [
        sys.executable, "-m", "bench.loadgen", "--target", side.gateway, "--model", model,
        "--datatype", datatype, "--shape", shape, "--concurrency", str(concurrency),
        "--duration", str(a.duration_s), "--warmup", str(a.warmup_s),
        "--stats-target", side.worker, "--out", str(out),
        "--cpu-pgid", str(side.gateway_pid), "--cpu-pgid", str(side.worker_pid),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(argv, check=False, cwd=ROOT, env=env)
    result = json.loads(out.read_text())
    if "error" in result:
        raise RuntimeError(f"load generator failed against {side.label}: {result['error']}")
    point: dict = result["points"][0]
    by_group = point.get("server_cpu_ms_per_req_by_pgid") or {}
    point["gateway_cpu_ms_per_req"] = by_group.get(str(side.gateway_pid), 0.0)
    point["worker_cpu_ms_per_req"] = by_group.get(str(side.worker_pid), 0.0)
    return point


PointRunner = Callable[[Side, str, int, argparse.Namespace, str], dict]


def measure(
    sides: tuple[Side, ...], a: argparse.Namespace, out_dir: str, run_point: PointRunner = load
) -> list[dict]:
    """Every (model, concurrency) point, every side per repeat, rotating who goes first (two
    sides alternate)."""
    rows: list[dict] = []
    flip = 0
    for model in a.models.split(","):
        for concurrency in (int(c) for c in a.concurrency.split(",")):
            runs: dict[str, list[dict]] = {side.label: [] for side in sides}
            ticks_before = machine_ticks()
            for _ in range(a.repeats):
                k = flip % len(sides)
                order = sides[k:] + sides[:k]
                flip += 1
                for side in order:
                    runs[side.label].append(run_point(side, model, concurrency, a, out_dir))
            row = summarise(model, concurrency, runs)
            row["steal_share"] = steal_share(ticks_before, machine_ticks())
            rows.append(row)
            print(line(row), flush=True)
    return rows


def profile_gateways(
    sides: tuple[Side, Side], point: str, a: argparse.Namespace, out_dir: pathlib.Path
) -> dict:
    """One more window per side at `point` (MODEL:C) with py-spy on its gateway and its worker
    at once: a digest per side and process."""
    model, _, concurrency = point.partition(":")
    found = shutil.which("py-spy", path=str(pathlib.Path(sys.executable).parent))
    exe = pathlib.Path(found) if found else profile.ensure_py_spy(out_dir / "py-spy-install.log")
    out_dir.mkdir(parents=True, exist_ok=True)
    digests: dict = {}
    for side in sides:
        # the load generator takes about a second to start, then warms up: sample the window
        seconds = a.duration_s + a.warmup_s + 1.0
        raws, spies = {}, []
        for role, pid in (("gateway", side.gateway_pid), ("worker", side.worker_pid)):
            raws[role] = out_dir / f"{role}-{side.label}-{model}-c{concurrency}.txt"
            spies.append(
                profile.start_record(exe, pid, seconds, raws[role], out_dir / f"py-spy-{role}.log")
            )
        load(side, model, int(concurrency), a, str(out_dir))
        for spy in spies:
            spy.wait(timeout=seconds + 30)
        for role, raw in raws.items():
            d = profile.digest(raw, top=25) if raw.exists() else {}
            digests[f"{side.label} {role}"] = d
            print(f"{side.label} {role} profile ({raw}):", flush=True)
            print(json.dumps(d, indent=1), flush=True)
    return digests


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(model: str, concurrency: int, runs: dict[str, list[dict]]) -> dict:
    row: dict = {"model": model, "concurrency": concurrency}
    for label, points in runs.items():
        row[label] = {
            "rps": _spread([p["rps"] for p in points]),
            "p50_ms": statistics.median(p["p50_ms"] or 0.0 for p in points),
            "p99_ms": statistics.median(p["p99_ms"] or 0.0 for p in points),
            "gateway_cpu_ms_per_req": statistics.median(
                p["gateway_cpu_ms_per_req"] for p in points
            ),
            "worker_cpu_ms_per_req": statistics.median(p["worker_cpu_ms_per_req"] for p in points),
            "mean_batch": statistics.median(p["mean_batch"] or 0.0 for p in points),
            "errors": sum(p["errors"] for p in points),
            "runs": points,
        }
    ratios = _ratios(runs["new"], runs["base"])
    row["ratios"] = ratios
    row["ratio_median"] = statistics.median(ratios)
    if "control" in runs:
        control = _ratios(runs["control"], runs["base"])
        row["control_ratios"] = control
        row["noise_band"] = [min(control), max(control)]
        row["verdict"] = verdict(row["ratio_median"], control)
    return row


def _ratios(over: list[dict], under: list[dict]) -> list[float]:
    """req/s of ``over`` / ``under`` per repeat (the same repeat's adjacent windows)."""
    return [
        o["rps"] / u["rps"] if u["rps"] else float("nan") for o, u in zip(over, under, strict=True)
    ]


def verdict(ratio_median: float, control_ratios: list[float]) -> str:
    """new/base against the A/A band of the same point: below its lowest ratio is a regression
    beyond noise, above its highest is faster, else within noise."""
    if ratio_median < min(control_ratios):
        return "regression"
    if ratio_median > max(control_ratios):
        return "faster"
    return "within noise"


def line(row: dict) -> str:
    b, n = row["base"], row["new"]
    spread = lambda s: f"{s['median']:6.0f} [{s['min']:.0f}-{s['max']:.0f}]"  # noqa: E731
    ratios = " ".join(f"{r:.2f}" for r in row["ratios"])
    control = ""
    if "control_ratios" in row:
        aa = " ".join(f"{r:.2f}" for r in row["control_ratios"])
        control = f"control/base ({aa}): {row['verdict']} | "
    return (
        f"{row['model']:<10} c={row['concurrency']:<3} "
        f"base {spread(b['rps'])} new {spread(n['rps'])} req/s | "
        f"new/base {row['ratio_median']:.2f} ({ratios}) | {control}"
        f"p50 {b['p50_ms']:.2f}/{n['p50_ms']:.2f} p99 {b['p99_ms']:.2f}/{n['p99_ms']:.2f} ms | "
        f"cpu ms/req gw {b['gateway_cpu_ms_per_req']:.3f}/{n['gateway_cpu_ms_per_req']:.3f} "
        f"worker {b['worker_cpu_ms_per_req']:.3f}/{n['worker_cpu_ms_per_req']:.3f} | "
        f"batch {b['mean_batch']:.1f}/{n['mean_batch']:.1f} | "
        f"errors {b['errors']}/{n['errors']}"
        + (f" | steal {row['steal_share']:.0%}" if row.get("steal_share") is not None else "")
    )


def _loadavg() -> str:
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--new", default="", help="git revision (default: this working tree)")
    parser.add_argument("--models", default="iris_clf,heavy_mlp")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--duration-s", type=float, default=4.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="", help="also write the rows here")
    parser.add_argument(
        "--control", action="store_true", help="a second base cluster: the A/A noise band"
    )
    parser.add_argument("--profile", default="", help="MODEL:C: py-spy on gateways and workers")
    parser.add_argument("--profile-dir", default=str(ROOT / ".cache" / "regress" / "profiles"))
    parser.add_argument("--skip-measure", action="store_true", help="only the --profile window")
    a = parser.parse_args(argv)
    unknown = set(a.models.split(",")) - set(_MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; known: {sorted(_MODELS)}")
    base = Side("base", checkout(a.base), _git("rev-parse", "--short", a.base))
    if a.new:
        new = Side("new", checkout(a.new), _git("rev-parse", "--short", a.new))
    else:
        dirty = " (+ uncommitted changes)" if _git("status", "--porcelain", "-uno") else ""
        new = Side("new", ROOT, _git("rev-parse", "--short", "HEAD") + dirty)
    sides: tuple[Side, ...] = (base, new)
    if a.control:
        sides = (base, new, Side("control", base.tree, base.rev))
    models = a.models.split(",")
    load_before = _loadavg()
    print(f"base {base.rev} ({base.tree})\nnew  {new.rev} ({new.tree})", flush=True)
    with tempfile.TemporaryDirectory(prefix="rf-regress-") as tmp:
        try:
            for side in sides:
                home = os.path.join(tmp, f"store-{side.label}")
                start_side(side, models, home)
            print(f"load average before: {load_before}", flush=True)
            rows = [] if a.skip_measure else measure(sides, a, tmp)
            if a.profile:
                profile_gateways((base, new), a.profile, a, pathlib.Path(a.profile_dir))
        finally:
            for side in reversed(sides):
                stop_side(side)
    load_after = _loadavg()
    print(f"load average after: {load_after}")
    if a.json:
        report = {
            "base": base.rev, "new": new.rev, "control": a.control,
            "duration_s": a.duration_s, "repeats": a.repeats,
            "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
        }  # fmt: skip
        pathlib.Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
