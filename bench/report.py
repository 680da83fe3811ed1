"""Turn one run's raw figures into targets, ratios, plots and the markdown report.

Pure functions over the `latest.json` structure (no servers, no protos, no tritonclient), so a
report can be regenerated from a saved JSON:

    python -m bench.report bench/results/latest.json [--markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The system whose ratios the targets are about: the full cluster, gateway + 1 worker.
CLUSTER = "cluster1"
LABELS = {
    "inprocess": "in-process (best batch)",
    "bare": "bare grpcio hop (no batching)",
    "worker": "RunnerFleet worker (direct)",
    "cluster1": "RunnerFleet cluster (gateway + 1 worker)",
    "cluster2": "RunnerFleet cluster (gateway + 2 workers)",
    "mlserver": "MLServer 1.7 (sklearn runtime, adaptive batching)",
    "triton": "Triton via PyTriton 0.7 (dynamic batcher)",
    "cluster1_http": "RunnerFleet cluster (gateway + 1 worker) over HTTP/REST v2",
    "triton_http": "Triton via PyTriton 0.7 over HTTP/REST v2 (same server as `triton`)",
}
SHORT = {
    "inprocess": "in-process",
    "bare": "bare grpcio",
    "worker": "RF worker",
    "cluster1": "RF gw+1w",
    "cluster2": "RF gw+2w",
    "mlserver": "MLServer",
    "triton": "Triton",
    "cluster1_http": "RF gw+1w HTTP",
    "triton_http": "Triton HTTP",
}
ORDER = ["bare", "worker", "cluster1", "cluster2", "mlserver", "triton"]
# HTTP/REST rows, each beside the same server's gRPC row (measured at few concurrencies only).
HTTP_CLUSTER = "cluster1_http"
HTTP_ORDER = [
    ("cluster1", "gRPC"),
    (HTTP_CLUSTER, "HTTP"),
    ("triton", "gRPC"),
    ("triton_http", "HTTP"),
]
HTTP_MODELS = ("iris_clf", "heavy_mlp")
HTTP_SYSTEMS = (HTTP_CLUSTER, "triton_http")
MODEL_TITLES = {
    "iris_clf": "iris (sklearn, 4 features)",
    "heavy_mlp": "heavy MLP (torch 64->4096->4096->10)",
    "echo": "echo, 4 MiB FP32 per request",
}


# ---- machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_gib() -> float:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return float("nan")


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_meta(profile: str) -> dict:
    vers = {}
    for d in (
        "runnerfleet",
        "grpcio",
        "protobuf",
        "numpy",
        "torch",
        "scikit-learn",
        "tritonclient",
        "matplotlib",
    ):
        try:
            vers[d] = version(d)
        except PackageNotFoundError:
            vers[d] = "?"
    return {
        "profile": profile,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": _git(),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _mem_gib(),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
        },
        "versions": vers,
        "perf_analyzer": "from the tritonclient 2.50.0 wheel",
    }


# ---- lookups -------------------------------------------------------------------------------
def point(res: dict, system: str, model: str, c: int, source: str = "loadgen") -> dict | None:
    pts = res.get("systems", {}).get(system, {}).get("models", {}).get(model, {}).get(source)
    if not isinstance(pts, list):
        return None
    for p in pts:
        if p.get("concurrency") == c and "rps" in p and p.get("requests", 1) > 0:
            return p
    return None


def answered_points(res: dict, system: str, model: str) -> list[dict]:
    """The load generator's points of `system` on `model` that got at least one answer."""
    pts = res.get("systems", {}).get(system, {}).get("models", {}).get(model, {}).get("loadgen")
    return [p for p in pts or [] if p.get("requests", 0) > 0]


def best_bandwidth(res: dict, system: str) -> tuple[float, int] | None:
    good = answered_points(res, system, "echo")
    if not good:
        return None
    b = max(good, key=lambda p: p["mib_per_s"])
    return b["mib_per_s"], b["concurrency"]


def inproc_rows(res: dict, model: str, batch: int | None = None) -> float | None:
    m = res.get("inprocess", {}).get("models", {}).get(model)
    if not m:
        return None
    if batch is None:
        return m["best"]["rows_per_s"]
    for p in m["points"]:
        if p["batch"] == batch:
            return p["rows_per_s"]
    return None


def _why_missing(res: dict, system: str) -> str:
    s = res.get("systems", {}).get(system)
    if not s:
        return f"{SHORT.get(system, system)} not run"
    if s.get("status") != "ok":
        return f"{SHORT.get(system, system)} unavailable: " + (s.get("reason") or "")[:160]
    return f"{SHORT.get(system, system)} has no figure here"


# ---- targets -------------------------------------------------------------------------------
def evaluate_targets(res: dict) -> list[dict]:
    out: list[dict] = []

    def ratio_target(
        tid: str, desc: str, model: str, c: int, peer: str, need: float, ours: str = CLUSTER
    ) -> None:
        a, b = point(res, ours, model, c), point(res, peer, model, c)
        t = {"id": tid, "target": desc, "required": need}
        if a is None or b is None:
            t.update(met=None, note=_why_missing(res, ours if a is None else peer))
        else:
            r = a["rps"] / b["rps"] if b["rps"] else math.inf
            t.update(measured=r, met=r >= need, note=f"{a['rps']:.0f} vs {b['rps']:.0f} req/s")
        # perf_analyzer's view of the same ratio, when both sides have it (not a target input)
        pa, pb = (
            point(res, ours, model, c, "perf_analyzer"),
            point(res, peer, model, c, "perf_analyzer"),
        )
        if pa and pb and pb["rps"]:
            t["perf_analyzer_ratio"] = pa["rps"] / pb["rps"]
            t["note"] = str(t.get("note", "")) + (
                f"; perf_analyzer {pa['rps']:.0f} vs {pb['rps']:.0f} = {pa['rps'] / pb['rps']:.2f}x"
            )
        out.append(t)

    ratio_target("iris_c16_triton", "iris c=16 req/s >= 1.3x Triton", "iris_clf", 16, "triton", 1.3)
    ratio_target(
        "iris_c16_mlserver", "iris c=16 req/s >= 2x MLServer", "iris_clf", 16, "mlserver", 2.0
    )
    ratio_target("iris_c64_triton", "iris c=64 req/s >= 1.2x Triton", "iris_clf", 64, "triton", 1.2)
    ratio_target(
        "iris_c64_mlserver", "iris c=64 req/s >= 2.5x MLServer", "iris_clf", 64, "mlserver", 2.5
    )
    for c in (16, 64):
        a = point(res, CLUSTER, "iris_clf", c)
        peers_p = {s: point(res, s, "iris_clf", c) for s in ("triton", "mlserver")}
        t = {
            "id": f"iris_c{c}_p99",
            "target": f"iris c={c} p99 no worse than Triton and MLServer",
            "required": 1.0,
            "lower_is_better": True,
        }
        have = {s: p for s, p in peers_p.items() if p}
        if a is None or not have:
            t.update(met=None, note=_why_missing(res, CLUSTER if a is None else "triton"))
        else:
            worst_ok = min(p["p99_ms"] for p in have.values())
            r = a["p99_ms"] / worst_ok if worst_ok else math.inf
            t.update(
                measured=r,
                met=r <= 1.0,
                note=f"{a['p99_ms']:.1f} ms vs "
                + ", ".join(f"{SHORT[s]} {p['p99_ms']:.1f} ms" for s, p in have.items())
                + ("" if len(have) == 2 else " (only)"),
            )
        out.append(t)
    a, b = point(res, CLUSTER, "iris_clf", 1), point(res, "triton", "iris_clf", 1)
    t = {
        "id": "iris_c1_p50",
        "target": "iris c=1 p50 <= 0.6x Triton's",
        "required": 0.6,
        "lower_is_better": True,
    }
    if a is None or b is None:
        t.update(met=None, note=_why_missing(res, CLUSTER if a is None else "triton"))
    else:
        r = a["p50_ms"] / b["p50_ms"]
        t.update(measured=r, met=r <= 0.6, note=f"{a['p50_ms']:.2f} vs {b['p50_ms']:.2f} ms")
    out.append(t)
    ratio_target(
        "heavy_c64_triton", "heavy MLP c=64 req/s >= 1.0x Triton", "heavy_mlp", 64, "triton", 1.0
    )
    a, ref = point(res, CLUSTER, "heavy_mlp", 64), inproc_rows(res, "heavy_mlp", 64)
    t = {
        "id": "heavy_c64_inproc",
        "target": "heavy MLP c=64 >= 50% of in-process rows/s at batch 64",
        "required": 0.5,
    }
    if a is None or not ref:
        t.update(met=None, note=_why_missing(res, CLUSTER if a is None else "inprocess"))
    else:
        r = a["rows_per_s"] / ref
        t.update(measured=r, met=r >= 0.5, note=f"{a['rows_per_s']:.0f} vs {ref:.0f} rows/s")
    out.append(t)
    ratio_target(
        "http_c16_triton", "iris HTTP c=16 req/s >= 1.2x Triton's HTTP", "iris_clf", 16,
        "triton_http", 1.2, ours=HTTP_CLUSTER,
    )  # fmt: skip
    ratio_target(
        "http_c16_grpc", "iris HTTP c=16 req/s >= 70% of RunnerFleet's gRPC", "iris_clf", 16,
        CLUSTER, 0.7, ours=HTTP_CLUSTER,
    )  # fmt: skip
    bw, bw_bare = best_bandwidth(res, CLUSTER), best_bandwidth(res, "bare")
    t = {
        "id": "echo_bandwidth",
        "target": "4 MiB tensors >= 50% of the bare grpcio hop's MiB/s",
        "required": 0.5,
    }
    if bw is None or bw_bare is None:
        t.update(met=None, note=_why_missing(res, CLUSTER if bw is None else "bare"))
    else:
        r = bw[0] / bw_bare[0]
        t.update(
            measured=r,
            met=r >= 0.5,
            note=(
                f"{bw[0]:.0f} MiB/s (c={bw[1]}) vs {bw_bare[0]:.0f} MiB/s (c={bw_bare[1]}),"
                " best of each"
            ),
        )
    out.append(t)
    return out


def targets_table(targets: list[dict]) -> str:
    rows = [("target", "measured", "required", "result", "figures")]
    for t in targets:
        m = t.get("measured")
        op = "<=" if t.get("lower_is_better") else ">="
        rows.append(
            (
                t["target"],
                f"{m:.2f}x" if m is not None else "-",
                f"{op} {t['required']:.2f}x",
                "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED"),
                t.get("note", "")[:110],
            )
        )
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["Targets (RunnerFleet cluster = gateway + 1 worker; loadgen figures):"]
    for i, r in enumerate(rows):
        lines.append("  " + "  ".join(r[j].ljust(w[j]) for j in range(4)) + "  " + r[4])
        if i == 0:
            lines.append("  " + "  ".join("-" * w[j] for j in range(4)) + "  " + "-" * 7)
    return "\n".join(lines)


# ---- plots ---------------------------------------------------------------------------------
def plots(res: dict, out_dir: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [
        m
        for m in MODEL_TITLES
        if any(
            res.get("systems", {}).get(s, {}).get("models", {}).get(m, {}).get("loadgen")
            for s in ORDER
        )
    ]
    if not models:
        return []
    out = []
    colors = {
        "bare": "#7f7f7f",
        "worker": "#1f77b4",
        "cluster1": "#d62728",
        "cluster2": "#ff7f0e",
        "mlserver": "#2ca02c",
        "triton": "#9467bd",
    }
    machine = res.get("meta", {}).get("machine", {})
    sub = (
        f"{machine.get('cores', '?')} cores, {res.get('meta', {}).get('date', '')}, "
        f"profile {res.get('meta', {}).get('profile', '')}"
    )

    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        key = "mib_per_s" if model == "echo" else "rps"
        for s in ORDER:
            pts = answered_points(res, s, model)
            if not pts:
                continue
            ax.plot(
                [p["concurrency"] for p in pts],
                [p[key] for p in pts],
                marker="o",
                label=SHORT[s],
                color=colors.get(s),
                lw=2.2 if s == CLUSTER else 1.4,
            )
        ref = inproc_rows(res, model, 64) if model == "heavy_mlp" else None
        if ref:
            ax.axhline(ref, ls="--", color="black", lw=1, label="in-process, batch 64")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (single-row requests)")
        ax.set_ylabel("MiB/s (request payload)" if model == "echo" else "requests/s")
        ax.set_title(MODEL_TITLES[model], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Throughput vs concurrency ({sub})", fontsize=10)
    fig.tight_layout()
    p1 = out_dir / "throughput_vs_concurrency.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)
    out.append(p1)

    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        key = "mib_per_s" if model == "echo" else "rps"
        for s in ORDER:
            pts = answered_points(res, s, model)
            if not pts:
                continue
            xs, ys = [p[key] for p in pts], [p["p99_ms"] for p in pts]
            ax.plot(
                xs,
                ys,
                marker="o",
                label=SHORT[s],
                color=colors.get(s),
                lw=2.2 if s == CLUSTER else 1.4,
            )
            for p, x, y in zip(pts, xs, ys, strict=True):
                ax.annotate(
                    f"c{p['concurrency']}",
                    (x, y),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                    color=colors.get(s),
                )
        ax.set_yscale("log")
        ax.set_xlabel("MiB/s (request payload)" if model == "echo" else "requests/s")
        ax.set_ylabel("p99 latency, ms (log)")
        ax.set_title(MODEL_TITLES[model], fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"p99 latency vs throughput (lower right is better; {sub})", fontsize=10)
    fig.tight_layout()
    p2 = out_dir / "p99_vs_throughput.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    out.append(p2)
    return out


# ---- markdown ------------------------------------------------------------------------------
def _f(v, nd=0, unit="") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{nd}f}{unit}"


def _ratio(a, b) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def markdown(res: dict, md_dir: pathlib.Path, plot_paths: list[pathlib.Path]) -> str:
    meta = res.get("meta", {})
    m = meta.get("machine", {})
    L: list[str] = []
    L.append("# RunnerFleet benchmarks")
    L.append("")
    L.append(
        f"Generated by `python -m bench.harness --{meta.get('profile')}` on "
        f"{meta.get('date')} (git {meta.get('git')}), in {meta.get('wall_s', 0):.0f} s. "
        "Every system below ran in this one run, on this one machine, one after another, "
        "serving the same models with the same weights (each system's answer to a fixed "
        "input was checked against the in-process output). Raw figures: "
        f"`{meta.get('results_json', 'bench/results/latest.json')}`."
    )
    L.append("")
    la0, la1 = meta.get("loadavg_start"), meta.get("loadavg_end")
    L.append(
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
        f"{m.get('os')}, Python {m.get('python')}"
    )
    if meta.get("other_cores") is not None:
        L.append(
            f"- Other work on the machine during the run: {meta['other_cores']:.2f} cores on "
            "average (machine busy CPU minus the harness's and its processes'); near 0 is a "
            "quiet run."
        )
    if la0 and la1:
        L.append(
            f"- Load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in la0)}; at "
            f"end {', '.join(f'{x:.2f}' for x in la1)}. Other work on the machine makes "
            "figures noisy: compare ratios within one run, not absolute figures across runs."
        )
    v = meta.get("versions", {})
    L.append("- Project venv: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    for s in ("mlserver", "triton"):
        info = res.get("systems", {}).get(s, {}).get("info", {})
        if info.get("versions"):
            L.append(
                f"- {SHORT[s]} venv: "
                + ", ".join(f"{k} {val}" for k, val in info["versions"].items())
                + "; settings: "
                + ", ".join(f"{k}={val}" for k, val in info.get("settings", {}).items())
            )
    st = meta.get("settings", {})
    L.append(
        f"- Load: `bench/loadgen.py` (one asyncio `tritonclient.grpc.aio` process, one "
        f"channel, single-row requests), concurrency {st.get('concurrency')} "
        f"(echo {st.get('echo_concurrency')}), {st.get('warmup_s')} s warm-up then "
        f"{st.get('duration_s')} s per point; perf_analyzer {meta.get('perf_analyzer')} "
        f"where the server has ModelConfig (not MLServer)."
    )
    L.append(
        "- Mean batch = rows / executions during the window, from ModelStatistics "
        "(RunnerFleet workers, Triton) or a histogram of MLServer's predict calls."
    )
    L.append(
        "- CPU columns: user + system CPU of every process of the system under test (its "
        "process groups: gateway, workers, tritonserver and its stubs, MLServer's workers) "
        "per successful request and in cores busy, and the load generator's own cores busy "
        "(near 1.0: the single-threaded client was itself the limit)."
    )
    L.append(
        "- Ratio columns: the RunnerFleet cluster (gateway + 1 worker) divided by the row's "
        "system at the same concurrency; req/s above 1x and p99 below 1x favour RunnerFleet."
    )
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append(
        "RunnerFleet cluster = gateway + 1 worker, measured with the project's load "
        "generator. Ratios are RunnerFleet / peer (for latency targets: RunnerFleet's "
        "latency / the peer's, lower is better)."
    )
    L.append("")
    L.append("| target | measured | required | result | figures |")
    L.append("|---|---|---|---|---|")
    for t in res.get("targets", []):
        mv = t.get("measured")
        op = "<=" if t.get("lower_is_better") else ">="
        L.append(
            f"| {t['target']} | {'-' if mv is None else f'{mv:.2f}x'} | {op} "
            f"{t['required']:.2f}x | "
            f"{'n/a' if t['met'] is None else ('met' if t['met'] else '**missed**')} | "
            f"{t.get('note', '').replace('|', '/')} |"
        )
    L.append("")
    for p in plot_paths:
        rel = os.path.relpath(p, md_dir)
        L.append(f"![{p.stem.replace('_', ' ')}]({rel})")
    L.append("")
    # Per-model tables.
    for model, title in MODEL_TITLES.items():
        systems = [
            s for s in ORDER if res.get("systems", {}).get(s, {}).get("models", {}).get(model)
        ]
        if not systems:
            continue
        L.append(f"## {title}")
        L.append("")
        ref_rows = inproc_rows(res, model)
        if ref_rows:
            best = res["inprocess"]["models"][model]["best"]
            L.append(
                f"In-process limit: {best['rows_per_s']:,.0f} rows/s at batch "
                f"{best['batch']} ({best['call_ms']:.2f} ms per call)."
                + (
                    f" At batch 64: {inproc_rows(res, model, 64):,.0f} rows/s."
                    if inproc_rows(res, model, 64)
                    else ""
                )
            )
            L.append("")
        bw = model == "echo"
        L.append(
            "| system | c | req/s | "
            + ("MiB/s | " if bw else "")
            + "p50 ms | p99 ms | mean batch | server CPU ms/req | server cores | client cores | "
            "RF cluster ÷ system (req/s) | RF cluster ÷ system (p99) | verified |"
        )
        L.append("|---|---|---|" + ("---|" if bw else "") + "---|---|---|---|---|---|---|---|---|")
        for s in systems:
            mm = res["systems"][s]["models"][model]
            if mm.get("error") and not mm.get("loadgen"):
                L.append(
                    f"| {SHORT[s]} | - | failed: {mm['error'][:120].replace('|', '/')} |"
                    + (" |" if bw else "")
                    + " | | | | | | | | |"
                )
                continue
            for p in mm.get("loadgen", []):
                cl = point(res, CLUSTER, model, p["concurrency"])
                ok = p.get("requests", 0) > 0
                L.append(
                    f"| {SHORT[s]} | {p['concurrency']} | {_f(p['rps'] if ok else None)} | "
                    + (f"{_f(p['mib_per_s'] if ok else None, 1)} | " if bw else "")
                    + f"{_f(p['p50_ms'] if ok else None, 2)} | "
                    f"{_f(p['p99_ms'] if ok else None, 2)} | "
                    f"{_f(p.get('mean_batch'), 1)} | "
                    f"{_f(p.get('server_cpu_ms_per_req'), 3)} | {_f(p.get('server_cores'), 2)} | "
                    f"{_f(p.get('client_cores'), 2)} | "
                    f"{'' if s == CLUSTER else _ratio(cl and cl['rps'], ok and p['rps'])} | "
                    f"{'' if s == CLUSTER else _ratio(cl and cl['p99_ms'], ok and p['p99_ms'])} | "
                    f"{'yes' if mm.get('verified') is True else mm.get('verified')} |"
                    + (
                        f" {p['errors']} errors: {p.get('first_error', '')[:80]}"
                        if p.get("errors")
                        else ""
                    )
                )
        L.append("")
        pa_rows = []
        for s in systems:
            pts = res["systems"][s]["models"][model].get("perf_analyzer")
            if isinstance(pts, dict):
                pa_rows.append(
                    f"| {SHORT[s]} | - | perf_analyzer unavailable: "
                    f"{pts.get('error', '')[:150]} | | | |"
                )
                continue
            for p in pts or []:
                if "error" in p:
                    pa_rows.append(
                        f"| {SHORT[s]} | {p['concurrency']} | failed: "
                        f"{p['error'][-150:].replace(chr(10), ' ').replace('|', '/')} | | | |"
                    )
                    continue
                cl = next(
                    (
                        q
                        for q in res["systems"]
                        .get(CLUSTER, {})
                        .get("models", {})
                        .get(model, {})
                        .get("perf_analyzer")
                        or []
                        if isinstance(q, dict)
                        and q.get("concurrency") == p["concurrency"]
                        and "rps" in q
                    ),
                    None,
                )
                pa_rows.append(
                    f"| {SHORT[s]} | {p['concurrency']} | {_f(p['rps'])} | "
                    f"{_f(p['p50_ms'], 2)} | {_f(p['p99_ms'], 2)} | "
                    f"{'' if s == CLUSTER else _ratio(cl and cl['rps'], p['rps'])} |"
                )
        if pa_rows:
            L.append("perf_analyzer (`-b 1`, time windows):")
            L.append("")
            L.append("| system | c | req/s | p50 ms | p99 ms | RF cluster ÷ system (req/s) |")
            L.append("|---|---|---|---|---|---|")
            L.extend(pa_rows)
            L.append("")
    L.extend(_http_md(res))
    L.extend(_profiles_md(res))
    # In-process sweep.
    ip = res.get("inprocess", {}).get("models", {})
    if ip:
        L.append("## In-process sweep (the machine's limit)")
        L.append("")
        L.append("| model | batch | rows/s | ms per call |")
        L.append("|---|---|---|---|")
        for model, d in ip.items():
            L.extend(
                f"| {model} | {p['batch']} | {p['rows_per_s']:,.0f} | {p['call_ms']:.3f} |"
                for p in d["points"]
            )
        L.append("")
    # Systems that did not run.
    bad = {s: d for s, d in res.get("systems", {}).items() if d.get("status") != "ok"}
    if bad or meta.get("perf_analyzer_error"):
        L.append("## Not measured")
        L.append("")
        for s, d in bad.items():
            reason = (d.get("reason") or "").strip().splitlines()
            L.append(f"- {LABELS.get(s, s)}: {reason[0][:300] if reason else 'unknown'}")
        if meta.get("perf_analyzer_error"):
            L.append(f"- perf_analyzer: {meta['perf_analyzer_error'][:300]}")
        L.append("")
    L.append("## Systems")
    L.append("")
    L.extend(f"- **{SHORT[s]}**: {LABELS[s]}" for s in ["inprocess", *ORDER, *HTTP_SYSTEMS])
    L.append("")
    L.append(
        "MLServer serves only the scikit-learn model (1.7 ships no torch runtime); its runtime "
        "is `mlserver_sklearn.SKLearnModel` subclassed only to count rows per predict call. "
        "Triton runs the torch model as a TorchScript trace of the stored module (checked "
        "equal to it) in PyTriton's Python backend. Reproduce: `make bench-quick` "
        "(`make bench` for long windows and perf_analyzer on every system)."
    )
    L.append("")
    return "\n".join(L)


def _http_md(res: dict) -> list[str]:
    """HTTP/REST v2 beside gRPC, for the same servers, at the HTTP rows' concurrencies."""
    systems = res.get("systems", {})
    if not any(systems.get(s, {}).get("models") for s in (HTTP_CLUSTER, "triton_http")):
        return []
    L = [
        "## HTTP/REST v2 beside gRPC",
        "",
        "The same running servers called over HTTP by `bench/loadgen.py --protocol http` "
        "(`tritonclient.http.aio`, binary tensors both ways, one connection per caller), "
        "beside their gRPC rows at the same concurrency.",
        "",
        "| system | protocol | model | c | req/s | p50 ms | p99 ms | mean batch | "
        "server CPU ms/req | client cores | RF HTTP ÷ system (req/s) | verified |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in HTTP_MODELS:
        http_pts = systems.get(HTTP_CLUSTER, {}).get("models", {}).get(model, {}).get("loadgen")
        concs = [p["concurrency"] for p in http_pts or []] or [16]
        for c in concs:
            ours = point(res, HTTP_CLUSTER, model, c)
            for s, proto in HTTP_ORDER:
                mm = systems.get(s, {}).get("models", {}).get(model)
                p = point(res, s, model, c)
                if mm is None or p is None:
                    continue
                L.append(
                    f"| {SHORT[s]} | {proto} | {model} | {c} | {_f(p['rps'])} | "
                    f"{_f(p['p50_ms'], 2)} | {_f(p['p99_ms'], 2)} | {_f(p.get('mean_batch'), 1)} | "
                    f"{_f(p.get('server_cpu_ms_per_req'), 3)} | {_f(p.get('client_cores'), 2)} | "
                    f"{'' if s == HTTP_CLUSTER else _ratio(ours and ours['rps'], p['rps'])} | "
                    f"{'yes' if mm.get('verified') is True else mm.get('verified')} |"
                )
    L.append("")
    return L


def _profiles_md(res: dict) -> list[str]:
    """The --profile digests: CPU samples per bucket and the hottest project functions."""
    L: list[str] = []
    for s in ORDER:
        for model, mm in res.get("systems", {}).get(s, {}).get("models", {}).items():
            pr = mm.get("profile")
            if not pr:
                continue
            if not L:
                L += ["## Where the time goes (py-spy)", ""]
                L.append(
                    "Sampled with `py-spy record --nonblocking` (200 Hz, CPU samples only: "
                    "idle threads are not counted) during one extra load window; buckets "
                    "by the innermost Python frame (C code runs under the frame that "
                    "called it). Raw collapsed stacks are in the run folder."
                )
                L.append("")
            lg = pr.get("loadgen") or {}
            L.append(
                f"### {SHORT[s]}, {model}, c={pr.get('concurrency')}"
                + (f": {lg['rps']:,.0f} req/s, p99 {lg['p99_ms']:.1f} ms" if lg else "")
            )
            L.append("")
            if pr.get("error"):
                L += [f"Not profiled: {pr['error']}", ""]
                continue
            for role, d in pr.get("processes", {}).items():
                if d.get("error"):
                    L += [f"- **{role}**: {d['error']}"]
                    continue
                secs = pr.get("seconds") or 1
                L.append(
                    f"- **{role}**: {d['samples']} samples (~{d['samples'] / 200 / secs:.2f} "
                    "cores busy). By bucket: "
                    + ", ".join(f"{k} {v}%" for k, v in list(d["buckets_pct"].items())[:8])
                )
                L.append(
                    "  - hottest RunnerFleet functions (inclusive): "
                    + "; ".join(
                        f"`{k}` {v}%" for k, v in list(d["top_project_inclusive_pct"].items())[:8]
                    )
                )
                L.append(
                    "  - hottest frames (self): "
                    + "; ".join(f"`{k}` {v}%" for k, v in list(d["top_self_pct"].items())[:6])
                )
            L.append("")
    return L


def keep_chaos_section(text: str, md: pathlib.Path) -> str:
    """`text` with the chaos section `make bench-chaos` wrote into `md` kept (bench/chaos.py)."""
    from bench.chaos import SECTION_BEGIN, SECTION_END, splice_section

    old = md.read_text() if md.exists() else ""
    start, end = old.find(SECTION_BEGIN), old.find(SECTION_END)
    if start == -1 or end < start:
        return text
    return splice_section(text, old[start + len(SECTION_BEGIN) + 1 : end])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json")
    p.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    a = p.parse_args(argv)
    res = json.loads(pathlib.Path(a.json).read_text())
    res["targets"] = evaluate_targets(res)
    out_dir = pathlib.Path(a.json).resolve().parent
    ps = plots(res, out_dir)
    md = pathlib.Path(a.markdown).resolve()
    md.write_text(keep_chaos_section(markdown(res, md.parent, ps), md))
    print(targets_table(res["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
