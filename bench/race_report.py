"""The race's report: medians and spread over repeats, each peer at its best, knees, targets.

Pure functions over `race.json` (written by `bench/race.py`), so a report can be rebuilt:

    python -m bench.race_report bench/results/race.json [--markdown BENCHMARKS.md]

- A *point* is one load shape on one model: closed loop (concurrency, rows per request), open
  loop (offered rate, constant or Poisson arrivals), or a model mix. Per entry (a system in one
  configuration) and point, the repeats give a median and a min-max spread of req/s and p99;
  samples, wrong answers and errors are summed over the repeats.
- A peer's *best* at a point is its configuration with the highest median req/s there; every
  ratio uses it (all configurations are listed). Open loop: a configuration's *knee* is the
  highest offered rate it sustains (achieved >= 95% of offered, p99 < 50 ms, no wrong answers or
  errors); the peer's knee is its best configuration's.
- BENCHMARKS.md sections between `<!-- begin:NAME -->` and `<!-- end:NAME -->` that other
  tools wrote are kept, after the generated text, and so is `make bench-chaos`'s section
  (its own markers, `bench/chaos.py`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys

__all__ = ["aggregate", "family", "markdown", "pa_line", "plots", "targets_table"]

KNEE_P99_MS = 50.0
FAMILY_LABEL = {
    "rf": "RunnerFleet gateway + 1 worker (gRPC)",
    "rf2": "RunnerFleet gateway + 2 workers (gRPC)",
    "rf-asyncio": "RunnerFleet gateway + 1 worker on asyncio's own event loop (gRPC)",
    "rf-grpc": "RunnerFleet gateway + 1 worker, gateway -> worker over gRPC (no local link)",
    "rf-nohop": "RunnerFleet gateway + 1 worker, gateway -> worker over gRPC only (no shm hop)",
    "bare": "bare grpcio + codec + runnable (no batching)",
    "zerocopy": "bare grpcio zero-copy echo (no decode)",
    "triton": "Triton via PyTriton 0.7",
    "mlserver": "MLServer 1.7",
    "bentoml": "BentoML 1.4 (HTTP/JSON, adaptive batching)",
    "rayserve": "Ray Serve 2 (HTTP/JSON, @serve.batch)",
    "rf-http": "RunnerFleet gateway + 1 worker (HTTP/JSON, KServe v2)",
    "triton-http": "Triton via PyTriton 0.7 (HTTP/JSON, KServe v2)",
}
PEERS = ["triton", "mlserver", "bentoml", "rayserve", "triton-http"]
HTTP_FAMILIES = ("rf-http", "triton-http", "bentoml", "rayserve")
HTTP_PEERS = ["bentoml", "rayserve", "triton-http"]
# entries that are not a configuration of their prefix's family
OWN_FAMILIES = ("rf-asyncio", "rf-grpc", "rf-nohop")


def family(entry: str) -> str:
    """`triton-d500-i2` -> `triton`; an entry called over HTTP keeps it: `rf-http` -> `rf-http`.

    `rf-asyncio` is a family of its own: RunnerFleet on the standard event loop is measured
    beside `rf`, never counted as one of its configurations.
    """
    if entry in OWN_FAMILIES:
        return entry
    base = entry.split("-", 1)[0]
    return f"{base}-http" if entry.endswith("-http") else base


def protocol(fam: str) -> str:
    return "HTTP/JSON" if fam in HTTP_FAMILIES else "gRPC"


def rf_family(fam: str) -> str:
    """The RunnerFleet family a peer's row is compared with: the same protocol."""
    return "rf-http" if fam in HTTP_FAMILIES else "rf"


def point_key(p: dict) -> str:
    models = "+".join(p["models"])
    if p["mode"] == "open":
        return f"{models}|open|{p.get('arrival', 'constant')}|{p['rate']:g}|r{p.get('rows', 1)}"
    return f"{models}|closed|c{p['c']}|r{p.get('rows', 1)}"


def _med(vals: list) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def _agg_points(runs: list[dict]) -> dict[str, dict]:
    by: dict[str, list[dict]] = {}
    for r in runs:
        if r.get("status") != "ok":
            continue
        for p in r.get("points", []):
            by.setdefault(point_key(p), []).append(p)
    out = {}
    for k, ps in by.items():
        rps = [p["rps"] for p in ps]
        p99 = [p["p99_ms"] for p in ps if p.get("p99_ms") is not None]
        first = ps[0]
        out[k] = {
            "key": k,
            "mode": first["mode"],
            "models": first["models"],
            "c": first.get("c"),
            "rate": first.get("rate"),
            "arrival": first.get("arrival"),
            "rows": first.get("rows", 1),
            "repeats": len(ps),
            "rps": _med(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "rows_per_s": _med([p.get("rows_per_s") for p in ps]),
            "mib_per_s": _med([p.get("mib_per_s") for p in ps]),
            "p50_ms": _med([p.get("p50_ms") for p in ps]),
            "p99_ms": _med(p99),
            "p99_ms_min": min(p99) if p99 else None,
            "p99_ms_max": max(p99) if p99 else None,
            "samples": sum(p["requests"] for p in ps),
            "samples_min": min(p["requests"] for p in ps),
            "wrong": sum(p.get("wrong", 0) for p in ps),
            "errors": sum(p.get("errors", 0) for p in ps),
            "first_problem": next(
                (
                    p.get("first_wrong") or p.get("first_error")
                    for p in ps
                    if p.get("first_wrong") or p.get("first_error")
                ),
                "",
            ),
            "mean_batch": _med([p.get("mean_batch") for p in ps]),
            "cpu_ms_per_req": _med([p.get("server_cpu_ms_per_req") for p in ps]),
            "server_cores": _med([p.get("server_cores") for p in ps]),
            "client_cores": _med([p.get("client_cores") for p in ps]),
            "rss_mib": _med([p.get("server_rss_mib") for p in ps]),
            "send_lag_p99_ms": _med([p.get("send_lag_p99_ms") for p in ps]),
            "per_model": first.get("per_model")
            and {
                m: {
                    "rps": _med([p["per_model"][m]["rps"] for p in ps]),
                    "p99_ms": _med([p["per_model"][m]["p99_ms"] for p in ps]),
                }
                for m in first["per_model"]
            },
        }
    return out


def _knees(points: dict[str, dict]) -> dict[str, dict]:
    """Per model|arrival: the highest offered rate sustained (see the module docstring)."""
    out: dict[str, dict] = {}
    for p in points.values():
        if p["mode"] != "open" or p["rows"] != 1:
            continue
        k = f"{p['models'][0]}|{p['arrival']}"
        ok = (
            p["rps"] is not None
            and p["rps"] >= 0.95 * p["rate"]
            and p["p99_ms"] is not None
            and p["p99_ms"] < KNEE_P99_MS
            and not p["wrong"]
            and not p["errors"]
        )
        cur = out.setdefault(k, {"knee_rps": 0.0, "tested": []})
        cur["tested"].append(p["rate"])
        if ok and p["rate"] > cur["knee_rps"]:
            cur["knee_rps"] = p["rate"]
    for v in out.values():
        v["tested"].sort()
        v["capped"] = bool(v["tested"]) and v["knee_rps"] == v["tested"][-1]
    return out


def aggregate(res: dict) -> dict:
    entries: dict[str, dict] = {}
    for e, runs in res.get("entries", {}).items():
        ok = [r for r in runs if r.get("status") == "ok"]
        pts = _agg_points(runs)
        entries[e] = {
            "family": family(e),
            "ok_repeats": len(ok),
            "failed": [r.get("reason", "") for r in runs if r.get("status") != "ok"],
            "cold_start_s": _med([r.get("cold_start_s") for r in ok]),
            "cold_start_min_s": min((r["cold_start_s"] for r in ok), default=None),
            "cold_start_max_s": max((r["cold_start_s"] for r in ok), default=None),
            "verified": ok[0]["verified"] if ok else {},
            "info": ok[0].get("info", {}) if ok else {},
            "rss_mib": max((p["rss_mib"] or 0 for p in pts.values()), default=None),
            "processes": _processes(ok),
            "points": pts,
            "knees": _knees(pts),
            "perf_analyzer": _agg_pa(ok),
        }
    best: dict[str, dict[str, str]] = {}
    for fam in {v["family"] for v in entries.values()}:
        cands = {e: v for e, v in entries.items() if v["family"] == fam}
        keys = {k for v in cands.values() for k in v["points"]}
        best[fam] = {}
        for k in keys:
            have = [(v["points"][k]["rps"] or 0, e) for e, v in cands.items() if k in v["points"]]
            best[fam][k] = max(have)[1]
    summary: dict[str, object] = {"entries": entries, "best": best}
    summary["targets"] = evaluate_targets(res, summary)
    return summary


def _processes(ok_runs: list[dict]) -> list[dict]:
    """The largest RSS seen per process name over the runs' points."""
    seen: dict[str, float] = {}
    for r in ok_runs:
        for p in r.get("points", []):
            for pr in p.get("server_processes") or []:
                seen[pr["comm"]] = max(seen.get(pr["comm"], 0.0), pr["rss_mib"])
    return [{"comm": k, "rss_mib": v} for k, v in sorted(seen.items(), key=lambda x: -x[1])]


def _agg_pa(ok_runs: list[dict]) -> list[dict]:
    by: dict[tuple, list[dict]] = {}
    for r in ok_runs:
        for p in r.get("perf_analyzer") or []:
            if "error" in p and "rps" not in p:
                by.setdefault(("error", p.get("model"), p.get("mode"), p.get("value")), []).append(
                    p
                )
                continue
            by.setdefault((p["model"], p["mode"], p["value"]), []).append(p)
    out = []
    for k, ps in by.items():
        if k[0] == "error":
            out.append({"model": k[1], "mode": k[2], "value": k[3], "error": ps[0]["error"]})
            continue
        out.append(
            {
                "model": k[0],
                "mode": k[1],
                "value": k[2],
                "repeats": len(ps),
                "rps": _med([p["rps"] for p in ps]),
                "rps_min": min(p["rps"] for p in ps),
                "rps_max": max(p["rps"] for p in ps),
                "p50_ms": _med([p.get("p50_ms") for p in ps]),
                "p99_ms": _med([p.get("p99_ms") for p in ps]),
                "stable": sum(1 for p in ps if p.get("stable")),
            }
        )
    return out


# ---- targets ----------------------------------------------------------------------------------
def _best_point(summary: dict, fam: str, key: str) -> tuple[str, dict] | None:
    e = summary["best"].get(fam, {}).get(key)
    return (e, summary["entries"][e]["points"][key]) if e else None


def _inproc_rows(res: dict, model: str, batch: int) -> float | None:
    pts = res.get("inprocess", {}).get("models", {}).get(model, {}).get("points", [])
    return next((p["rows_per_s"] for p in pts if p["batch"] == batch), None)


def evaluate_targets(res: dict, summary: dict) -> list[dict]:
    out: list[dict] = []

    def add(desc: str, measured: float | None, need: float, higher: bool, figures: str) -> None:
        if measured is None:
            result = "not measured"
        else:
            result = "met" if (measured >= need if higher else measured <= need) else "missed"
        out.append(
            {
                "target": desc,
                "measured": measured,
                "required": f"{'>=' if higher else '<='} {need:.2f}x",
                "result": result,
                "figures": figures,
            }
        )

    def ratio(model: str, c: int, peer: str, need: float, rows: int = 1, ours: str = "") -> None:
        """`ours` (default: RunnerFleet over the peer's protocol, `rf` or `rf-http`) ÷ `peer`."""
        key = f"{model}|closed|c{c}|r{rows}"
        ours = ours or rf_family(peer)
        rf, pb = _best_point(summary, ours, key), _best_point(summary, peer, key)
        who = "" if ours == "rf" else f"{ours} "
        config = "its gRPC" if peer == "rf" else "best config"
        desc = f"{model} c={c} {who}req/s >= {need}x {peer} ({config})"
        if not rf or not pb or not rf[1]["rps"] or not pb[1]["rps"]:
            add(desc, None, need, True, "no figure for one side")
            return
        add(
            desc,
            rf[1]["rps"] / pb[1]["rps"],
            need,
            True,
            f"{rf[1]['rps']:,.0f} vs {pb[1]['rps']:,.0f} req/s ({pb[0]}), medians of "
            f"{rf[1]['repeats']}/{pb[1]['repeats']}",
        )

    for c in (16, 64):
        ratio("iris_clf", c, "triton", 1.5)
    for c in (16, 64):
        ratio("iris_clf", c, "mlserver", 2.5)
    # c=1 p50: against the peer's lowest p50 among its configurations
    key = "iris_clf|closed|c1|r1"
    rf = _best_point(summary, "rf", key)
    tr = [
        (v["points"][key]["p50_ms"], e)
        for e, v in summary["entries"].items()
        if v["family"] == "triton" and key in v["points"] and v["points"][key]["p50_ms"]
    ]
    if rf and rf[1]["p50_ms"] and tr:
        lo = min(tr)
        add(
            "iris c=1 p50 <= 0.5x Triton's (its lowest)",
            rf[1]["p50_ms"] / lo[0],
            0.5,
            False,
            f"{rf[1]['p50_ms']:.2f} vs {lo[0]:.2f} ms ({lo[1]})",
        )
    else:
        add("iris c=1 p50 <= 0.5x Triton's (its lowest)", None, 0.5, False, "no figure")
    ratio("heavy_mlp", 64, "triton", 1.3)
    key = "heavy_mlp|closed|c64|r1"
    rf, pb = _best_point(summary, "rf", key), _best_point(summary, "triton", key)
    if rf and pb and rf[1]["p99_ms"] and pb[1]["p99_ms"]:
        add(
            "heavy MLP c=64 p99 no worse than Triton's (best config)",
            rf[1]["p99_ms"] / pb[1]["p99_ms"],
            1.0,
            False,
            f"{rf[1]['p99_ms']:.1f} vs {pb[1]['p99_ms']:.1f} ms; samples {rf[1]['samples']:,} / "
            f"{pb[1]['samples']:,}",
        )
    else:
        add("heavy MLP c=64 p99 no worse than Triton's", None, 1.0, False, "no figure")
    ip = _inproc_rows(res, "heavy_mlp", 64)
    if rf and ip:
        add(
            "heavy MLP c=64 >= 50% of in-process rows/s at batch 64",
            rf[1]["rows_per_s"] / ip,
            0.5,
            True,
            f"{rf[1]['rows_per_s']:,.0f} vs {ip:,.0f} rows/s",
        )
    else:
        add("heavy MLP c=64 >= 50% of in-process rows/s at batch 64", None, 0.5, True, "no figure")
    ratio("resnet18", 16, "triton", 1.2)
    ratio("transformer", 16, "triton", 1.2)
    # issue 14: RunnerFleet's HTTP/JSON beside Triton's HTTP endpoint (KServe v2 JSON both),
    # and beside RunnerFleet's own gRPC
    ratio("iris_clf", 16, "triton-http", 1.2)
    ratio("iris_clf", 16, "rf", 0.7, ours="rf-http")
    # open loop knee
    for arrival in ("poisson", "constant"):
        kk = f"iris_clf|{arrival}"
        rfk = [
            v["knees"][kk]
            for v in summary["entries"].values()
            if v["family"] == "rf" and kk in v["knees"]
        ]
        trk = [
            (v["knees"][kk]["knee_rps"], e)
            for e, v in summary["entries"].items()
            if v["family"] == "triton" and kk in v["knees"]
        ]
        if rfk and trk:
            t = max(trk)
            cap = " (RunnerFleet at the top rate tested: a lower bound)" if rfk[0]["capped"] else ""
            add(
                f"iris open loop ({arrival}) knee >= 1.3x Triton's",
                rfk[0]["knee_rps"] / t[0] if t[0] else None,
                1.3,
                True,
                f"{rfk[0]['knee_rps']:,.0f} vs {t[0]:,.0f} req/s ({t[1]}) "
                f"at p99 < {KNEE_P99_MS:.0f} ms{cap}",
            )
            break
    else:
        add("iris open loop knee >= 1.3x Triton's", None, 1.3, True, "no open-loop figures")
    rf_bw = [
        p["mib_per_s"]
        for e, v in summary["entries"].items()
        if v["family"] == "rf"
        for k, p in v["points"].items()
        if k.startswith("echo|closed")
    ]
    zc_bw = [
        p["mib_per_s"]
        for e, v in summary["entries"].items()
        if v["family"] == "zerocopy"
        for k, p in v["points"].items()
        if k.startswith("echo|closed")
    ]
    if rf_bw and zc_bw and max(zc_bw):
        add(
            "4 MiB tensors >= 80% of the zero-copy bare hop (best of each)",
            max(rf_bw) / max(zc_bw),
            0.8,
            True,
            f"{max(rf_bw):,.0f} vs {max(zc_bw):,.0f} MiB/s",
        )
    else:
        add("4 MiB tensors >= 80% of the zero-copy bare hop", None, 0.8, True, "no figure")
    return out


def targets_table(targets: list[dict]) -> str:
    lines = ["| target | measured | required | result | figures |", "|---|---|---|---|---|"]
    for t in targets:
        m = "-" if t["measured"] is None else f"{t['measured']:.2f}x"
        res = t["result"] if t["result"] == "met" else f"**{t['result']}**"
        lines.append(f"| {t['target']} | {m} | {t['required']} | {res} | {t['figures']} |")
    return "\n".join(lines)


# ---- plots --------------------------------------------------------------------------------------
def _series(summary: dict, fam: str, model: str) -> list[tuple[int, float]]:
    out = []
    for k, e in summary["best"].get(fam, {}).items():
        p = summary["entries"][e]["points"][k]
        if p["mode"] == "closed" and p["models"] == [model] and p["rows"] == 1:
            out.append((p["c"], p["rps"]))
    return sorted(out)


def plots(res: dict, out_dir: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = res.get("summary") or aggregate(res)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    models = [m for m in res.get("plan", {}) if m != "echo"]
    fams = [
        f
        for f in ("rf", "rf2", "triton", "mlserver", "bare", *HTTP_FAMILIES)
        if f in summary["best"]
    ]
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), squeeze=False)
        for ax, m in zip(axes[0], models, strict=True):
            for f in fams:
                s = _series(summary, f, m)
                if s:
                    ax.plot([x for x, _ in s], [y for _, y in s], marker="o", label=f)
            ax.set_xscale("log", base=2)
            ax.set_title(m)
            ax.set_xlabel("concurrency")
            ax.set_ylabel("req/s (median; peers: best config)")
        paths.append(_save(fig, axes, out_dir / "race_throughput_vs_concurrency.png", 7))
    curves = [(e, kk) for e, v in summary["entries"].items() for kk in v["knees"]]
    if curves:
        keys = sorted({kk for _, kk in curves})
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
        for ax, kk in zip(axes[0], keys, strict=True):
            model, arrival = kk.split("|")
            for e, v in summary["entries"].items():
                pts = sorted(
                    (p["rate"], p["p99_ms"])
                    for p in v["points"].values()
                    if p["mode"] == "open"
                    and p["models"] == [model]
                    and p["arrival"] == arrival
                    and p["p99_ms"] is not None
                    and p["rows"] == 1
                )
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=e)
            ax.axhline(KNEE_P99_MS, color="grey", lw=0.8, ls="--")
            ax.set_yscale("log")
            ax.set_title(f"{model}, {arrival} arrivals")
            ax.set_xlabel("offered req/s")
            ax.set_ylabel("p99 ms (median)")
        paths.append(_save(fig, axes, out_dir / "race_latency_vs_offered_load.png", 6))
    return paths


def _save(fig, axes, path: pathlib.Path, legend_fontsize: int) -> pathlib.Path:
    """A legend on the first panel (if anything was drawn), then the figure saved and closed."""
    import matplotlib.pyplot as plt

    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=legend_fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---- markdown -----------------------------------------------------------------------------------
def _f(v, nd: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def _spread(p: dict, key: str, nd: int) -> str:
    lo, hi = p.get(f"{key}_min"), p.get(f"{key}_max")
    if p.get("repeats", 1) < 2 or lo is None:
        return _f(p.get(key), nd)
    return f"{_f(p.get(key), nd)} [{_f(lo, nd)}-{_f(hi, nd)}]"


def pa_load(p: dict) -> str:
    """A perf_analyzer row's load: `c=16`, `1000 req/s Poisson`, or `-` where it failed before
    any load was set (perf_analyzer unavailable)."""
    if p.get("mode") == "c":
        return f"c={p['value']}"
    if p.get("mode") == "rate":
        return f"{p['value']:g} req/s Poisson"
    return "-"


def pa_error(p: dict, max_chars: int) -> str:
    """`error: <reason>` of a failed perf_analyzer row, on one line, no `|` to break a table."""
    reason = " ".join(str(p.get("error") or "failed").split()).replace("|", "/")
    return f"error: {reason[:max_chars]}"


def pa_line(p: dict) -> str:
    """One perf_analyzer result of a run in words (the race's console): figures or the error."""
    what = " ".join(x for x in (p.get("model"), pa_load(p)) if x and x != "-")
    head = f"{what}: " if what else ""
    if "error" in p and "rps" not in p:
        return head + pa_error(p, 300)
    stable = "" if p.get("stable", True) else ", not stable"
    return f"{head}{_f(p['rps'])} req/s, p99 {_f(p.get('p99_ms'), 1)} ms{stable}"


def _header(*cols: str) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _kept_sections(old: str) -> list[str]:
    return [
        m.group(0) for m in re.finditer(r"<!-- begin:([\w.-]+) -->.*?<!-- end:\1 -->", old, re.S)
    ]


def http_ratios(summary: dict, models: list[str]) -> list[dict]:
    """Per closed-loop point RunnerFleet served over HTTP: rf-http beside each HTTP peer's best."""
    out = []
    rf_pts = summary["best"].get("rf-http", {})
    for key, e in rf_pts.items():
        p = summary["entries"][e]["points"][key]
        if p["mode"] != "closed" or len(p["models"]) != 1:
            continue
        row = {"key": key, "model": p["models"][0], "c": p["c"], "rows": p["rows"], "rf": p}
        for peer in HTTP_PEERS:
            b = _best_point(summary, peer, key)
            if b and b[1]["rps"]:
                row[peer] = {"entry": b[0], "point": b[1], "ratio": (p["rps"] or 0) / b[1]["rps"]}
        out.append(row)
    order = {m: i for i, m in enumerate(models)}
    out.sort(key=lambda r: (order.get(r["model"], len(order)), r["rows"], r["c"]))
    return out


def _http_section(summary: dict, models: list[str]) -> list[str]:
    rows = http_ratios(summary, models)
    if not rows:
        return []
    peers = [f for f in HTTP_PEERS if any(f in r for r in rows)]
    L = ["## Over HTTP/JSON: RunnerFleet beside BentoML, Ray Serve (and Triton)", ""]
    L.append(
        "Closed loop, the same aiohttp JSON client for every system; RunnerFleet is `rf-http` "
        "(gateway + 1 worker, KServe v2 JSON), each peer its best configuration at the point. "
        "Ratio = RF HTTP req/s ÷ the peer's; p99 in ms beside each req/s."
    )
    L.append("")
    cols = ["model", "c", "rows", "RF HTTP req/s, p99"]
    for f in peers:
        cols += [f"{f} req/s, p99 (config)", f"RF HTTP ÷ {f}"]
    L += _header(*cols)
    for r in rows:
        rf = r["rf"]
        cells = [r["model"], str(r["c"]), str(r["rows"])]
        cells.append(f"{_spread(rf, 'rps', 0)}, {_f(rf['p99_ms'], 1)}")
        for f in peers:
            if f in r:
                b = r[f]
                cells.append(
                    f"{_spread(b['point'], 'rps', 0)}, {_f(b['point']['p99_ms'], 1)} ({b['entry']})"
                )
                cells.append(f"{b['ratio']:.2f}x")
            else:
                cells += ["-", "-"]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    return L


def markdown(res: dict, md_dir: pathlib.Path, plot_paths: list[pathlib.Path], old: str = "") -> str:
    import os

    summary = res.get("summary") or aggregate(res)
    meta = res["meta"]
    st = meta.get("settings", {})
    L: list[str] = ["# RunnerFleet benchmarks: the race", ""]
    m = meta.get("machine", {})
    L.append(
        f"Generated by `python -m bench.race --{meta.get('profile')}` on {meta.get('date', '?')} "
        f"(git {meta.get('git', '?')}) in {meta.get('wall_s', 0):.0f} s. Raw figures: "
        f"`{meta.get('results_json', 'race.json')}`."
    )
    L.append("")
    L.append(
        f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, "
        f"{m.get('os', '')}, Python {m.get('python', '?')}"
    )
    la0, la1 = meta.get("loadavg_start") or [0, 0, 0], meta.get("loadavg_end") or [0, 0, 0]
    L.append(
        f"- Other work on the machine during the run: {meta.get('other_cores', 0):.2f} cores on "
        f"average; load average at start {', '.join(f'{x:.2f}' for x in la0)}, at end "
        f"{', '.join(f'{x:.2f}' for x in la1)}. Near 0 other cores is a quiet run."
    )
    vers = meta.get("versions", {})
    if vers:
        L.append("- Project venv: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    L.append(
        f"- Method: {st.get('repeats')} repeat(s); in each, every entry (a system in one "
        f"configuration) runs alone, in a shuffled order (seed {meta.get('seed')}): "
        + "; ".join(
            f"repeat {r['repeat'] + 1}: {', '.join(r['order'])}" for r in res.get("runs", [])
        )
        + f". Windows {st.get('duration_s')} s after {st.get('warmup_s')} s warm-up"
        + (
            f", a closed-loop window running on (up to {st.get('max_window_s')} s) until it holds "
            f"{st.get('min_samples'):,} answers"
            if st.get("min_samples")
            else ""
        )
        + ". Figures are medians over the repeats, [min-max] beside them; `samples` is the number "
        "of answers behind the percentiles, summed over the repeats."
    )
    L.append(
        "- Inputs: every request carries a distinct input from a pool (`bench/prepare.py`) and "
        "every answer is compared with the in-process model's answer for that input during the "
        "load (`wrong`); failed calls are `errors`. Neither counts as a success. Before its load "
        "each entry also answers one fixed input (`verified`). Same weights everywhere: torch "
        "models are exported as TorchScript and checked tensor by tensor (sha256 below); "
        "scikit-learn models are one joblib file every system loads."
    )
    L.append(
        f"- perf_analyzer: stability check on (10%, up to {st.get('pa_trials')} windows of "
        f"{st.get('pa_interval_ms')} ms); closed loop {st.get('pa_closed')}, open loop "
        f"(`--request-rate-range`, Poisson) {st.get('pa_rates')}."
        + (
            f" Unavailable: {meta['perf_analyzer_error']}"
            if meta.get("perf_analyzer_error")
            else ""
        )
    )
    L.append(
        "- Protocol: rows say which. gRPC rows are KServe v2 gRPC (`tritonclient.grpc.aio`). "
        "HTTP/JSON rows are JSON over HTTP/1.1 keep-alive from one `aiohttp` client (bodies "
        "built once per pool entry, every answer parsed and checked): RunnerFleet's gateway "
        "(`rf-http`) and Triton (`triton-*-http`) in KServe v2 JSON (`POST "
        "/v2/models/<model>/infer`, typed `data`), BentoML and Ray Serve in their own JSON "
        '(`POST /<model>` with `{"x": rows}`). A ratio compares systems over the same protocol: '
        "HTTP rows against `rf-http`, gRPC rows against `rf`."
    )
    if st.get("name") != "full":
        L.append(
            f"- **Profile `{st.get('name')}`**: short windows, {st.get('repeats')} repeat(s), a "
            "subset of configurations and points. Its figures check the machinery; `make bench` "
            "gives the published ones."
        )
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append(
        "Ratios are the RunnerFleet cluster (gateway + 1 worker) over each peer's best "
        "configuration at that point, medians of the repeats, same run."
    )
    L.append("")
    L.append(targets_table(summary["targets"]))
    L.append("")
    for p in plot_paths:
        rel = os.path.relpath(p, md_dir)
        L.append(f"![{p.stem}]({rel})")
    L.append("")
    # not measured
    bad = {e: v for e, v in summary["entries"].items() if v["failed"] and not v["ok_repeats"]}
    skipped = [e for e in (st.get("entries") or []) if e not in summary["entries"]]
    if bad or skipped:
        L.append("## Not measured")
        L.append("")
        for e, v in bad.items():
            lines = [x.strip() for x in v["failed"][0].splitlines() if x.strip(" ;")]
            why = next((x for x in reversed(lines) if "Error" in x), lines[-1] if lines else "")
            L.append(f"- `{e}`: {why[:400] or 'failed'}")
        L.extend(f"- `{e}`: not run" for e in skipped)
        L.append("")
    # models
    plan = res.get("plan", {})
    L.append("## Models")
    L.append("")
    L += _header(
        "model",
        "store tag",
        "request row",
        "weights sha256",
        "pool",
        "in-process load s",
        "in-process best batch",
    )
    ip = res.get("inprocess", {}).get("models", {})
    for name, pl in plan.items():
        b = ip.get(name, {}).get("best")
        best = f"{_f(b['rows_per_s'])} rows/s at {b['batch']}" if b else "-"
        L.append(
            f"| {name} | `{pl.get('tag')}` | "
            f"{pl.get('request_shape', [])[1:]} {pl.get('datatype')} "
            f"| `{(pl.get('weights_sha256') or '-')[:16]}` | {pl.get('pool_requests')} x "
            f"{pl.get('max_rows')} rows | {_f(pl.get('load_s'), 2)} | {best} |"
        )
    bw = res.get("inprocess", {}).get("memory_bandwidth")
    L.append("")
    L.append("## Limits")
    L.append("")
    L.append("- In-process: the stored model's runnable called directly, rows/s per batch size:")
    for name, v in ip.items():
        L.append(
            f"  - {name}: "
            + ", ".join(f"b={p['batch']}: {_f(p['rows_per_s'])}" for p in v.get("points", []))
        )
    if bw:
        L.append(
            f"- Memory bandwidth: numpy copy of {bw['bytes'] // 2**20} MiB: "
            f"{bw['gib_per_s']:.1f} GiB/s ({bw['copy_ms']:.2f} ms per copy); a 4 MiB request "
            "costs at least that per copy it makes."
        )
    for fam in ("zerocopy", "bare"):
        pts = [
            p
            for v in summary["entries"].values()
            if v["family"] == fam
            for p in v["points"].values()
            if p["models"] == ["echo"]
        ]
        if pts:
            b = max(pts, key=lambda p: p["mib_per_s"] or 0)
            L.append(
                f"- {FAMILY_LABEL[fam]}: 4 MiB echo {_f(b['mib_per_s'])} MiB/s at c={b['c']} "
                f"({_f(b['rps'])} req/s)"
            )
    L.append("")
    # resources
    L.append("## Resources")
    L.append("")
    L += _header(
        "entry",
        "cold start s (spawn to SERVING, all its models)",
        "RSS MiB (all processes, max)",
        "largest processes",
        "settings",
    )
    for e, v in sorted(summary["entries"].items()):
        if not v["ok_repeats"]:
            continue
        cs = _f(v["cold_start_s"], 1)
        if v["ok_repeats"] > 1:
            cs += f" [{_f(v['cold_start_min_s'], 1)}-{_f(v['cold_start_max_s'], 1)}]"
        procs_s = ", ".join(f"{p['comm']} {p['rss_mib']:.0f}" for p in v["processes"][:4])
        sett = v["info"].get("settings") or {k: v["info"][k] for k in v["info"] if k != "versions"}
        L.append(f"| {e} | {cs} | {_f(v['rss_mib'])} | {procs_s} | {json.dumps(sett)[:160]} |")
    L.append("")
    L.append(
        "CPU per request (server processes, from /proc) is in the tables below (`CPU ms/req`)."
    )
    L.append("")
    L += _http_section(summary, list(plan))
    # per-model tables
    models = list(plan)
    for model in models:
        rows = [
            (e, p)
            for e, v in summary["entries"].items()
            for p in v["points"].values()
            if p["models"] == [model] and p["mode"] == "closed"
        ]
        if not rows:
            continue
        L.append(f"## {model}: closed loop")
        L.append("")
        L += _header(
            "entry",
            "protocol",
            "c",
            "rows",
            "req/s [min-max]",
            "p50 ms",
            "p99 ms [min-max]",
            "samples",
            "wrong",
            "errors",
            "mean batch",
            "CPU ms/req",
            "client cores",
            "best of its peer",
            "RF ÷ it (same protocol)",
        )
        rows.sort(key=lambda x: (x[1]["rows"], x[1]["c"], protocol(family(x[0])), x[0]))
        for e, p in rows:
            fam = family(e)
            is_best = summary["best"].get(fam, {}).get(p["key"]) == e
            rf = _best_point(summary, rf_family(fam), p["key"])
            ratio = (
                f"{rf[1]['rps'] / p['rps']:.2f}x"
                if rf and p["rps"] and fam != rf_family(fam)
                else ""
            )
            L.append(
                f"| {e} | {protocol(fam)} | {p['c']} | {p['rows']} | {_spread(p, 'rps', 0)} | "
                f"{_f(p['p50_ms'], 2)} | "
                f"{_spread(p, 'p99_ms', 1)} | {p['samples']:,} | {p['wrong']} | {p['errors']} | "
                f"{_f(p['mean_batch'], 1)} | {_f(p['cpu_ms_per_req'], 3)} | "
                f"{_f(p['client_cores'], 2)} | "
                f"{'yes' if is_best and fam in PEERS and p['rps'] else ''} | {ratio} |"
            )
        L.append("")
        opens = [
            (e, p)
            for e, v in summary["entries"].items()
            for p in v["points"].values()
            if p["models"] == [model] and p["mode"] == "open"
        ]
        if opens:
            L.append(f"### {model}: open loop (latency from each request's scheduled time)")
            L.append("")
            L += _header(
                "entry",
                "arrivals",
                "offered req/s",
                "achieved req/s",
                "p50 ms",
                "p99 ms [min-max]",
                "samples",
                "wrong",
                "errors",
                "client send lag p99 ms",
            )
            opens.sort(key=lambda x: (x[1]["arrival"], x[0], x[1]["rate"]))
            for e, p in opens:
                L.append(
                    f"| {e} | {p['arrival']} | {_f(p['rate'])} | {_spread(p, 'rps', 0)} | "
                    f"{_f(p['p50_ms'], 2)} | {_spread(p, 'p99_ms', 1)} | {p['samples']:,} | "
                    f"{p['wrong']} | {p['errors']} | {_f(p['send_lag_p99_ms'], 2)} |"
                )
            L.append("")
            L.append(f"Knees (highest offered rate sustained at p99 < {KNEE_P99_MS:.0f} ms):")
            L.append("")
            for e, v in sorted(summary["entries"].items()):
                for kk, k in v["knees"].items():
                    if kk.startswith(model + "|"):
                        cap = " (top rate tested)" if k["capped"] else ""
                        L.append(f"- {e}, {kk.split('|')[1]}: {_f(k['knee_rps'])} req/s{cap}")
            L.append("")
    mixes = [
        (e, p)
        for e, v in summary["entries"].items()
        for p in v["points"].values()
        if len(p["models"]) > 1
    ]
    if mixes:
        L.append("## A mix of models in one cluster (round robin)")
        L.append("")
        L += _header(
            "entry",
            "models",
            "c",
            "req/s [min-max]",
            "p99 ms",
            "per model req/s, p99 ms",
            "samples",
            "wrong",
            "errors",
        )
        for e, p in sorted(mixes, key=lambda x: (x[1]["c"], x[0])):
            per = "; ".join(
                f"{m}: {_f(v['rps'])}, {_f(v['p99_ms'], 1)}"
                for m, v in (p["per_model"] or {}).items()
            )
            L.append(
                f"| {e} | {'+'.join(p['models'])} | {p['c']} | {_spread(p, 'rps', 0)} | "
                f"{_f(p['p99_ms'], 1)} | {per} | {p['samples']:,} | {p['wrong']} | {p['errors']} |"
            )
        L.append("")
    pa_rows = [(e, p) for e, v in summary["entries"].items() for p in v["perf_analyzer"]]
    if pa_rows:
        L.append("## perf_analyzer (stability check on)")
        L.append("")
        L.append(
            "| entry | model | load | req/s [min-max] | p50 ms | p99 ms | stable runs / repeats |"
        )
        L.append("|---|---|---|---|---|---|---|")
        for e, p in sorted(
            pa_rows,
            key=lambda x: (
                str(x[1].get("model")),
                str(x[1].get("mode")),
                str(x[1].get("value")),
                x[0],
            ),
        ):
            model, load = p.get("model") or "-", pa_load(p)
            if "error" in p:
                L.append(f"| {e} | {model} | {load} | {pa_error(p, 160)} | | | |")
                continue
            L.append(
                f"| {e} | {model} | {load} | {_spread(p, 'rps', 0)} | {_f(p['p50_ms'], 2)} | "
                f"{_f(p['p99_ms'], 1)} | {p['stable']}/{p['repeats']} |"
            )
        L.append("")
    L.append("## Verified (one fixed input, before the load)")
    L.append("")
    for e, v in sorted(summary["entries"].items()):
        if v["ok_repeats"]:
            L.append(
                f"- {e}: "
                + ", ".join(f"{m} {'yes' if ok is True else ok}" for m, ok in v["verified"].items())
            )
    L.append("")
    kept = _kept_sections(old)
    if kept:
        L += [*kept, ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--markdown", default="")
    a = ap.parse_args(argv)
    js = pathlib.Path(a.json)
    res = json.loads(js.read_text())
    res["summary"] = aggregate(res)
    plot_paths = plots(res, js.parent)
    md = pathlib.Path(a.markdown) if a.markdown else js.parent / "BENCHMARKS.md"
    old = md.read_text() if md.exists() else ""
    from bench import report

    md.write_text(report.keep_chaos_section(markdown(res, md.parent, plot_paths, old), md))
    print(targets_table(res["summary"]["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
