"""Generate the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json) as code.

    .venv/bin/pip install grafana-foundation-sdk      # Grafana's own SDK, from PyPI
    .venv/bin/python deploy/grafana/generate_dashboards.py          # rewrite the JSON
    .venv/bin/python deploy/grafana/generate_dashboards.py --check  # fail when the JSON drifted

The JSON files are committed, so Grafana and the tests never need the SDK; this script is the
reviewable source of every panel and query. Metric names are the ones docs/ARCHITECTURE.md fixes.
tests/deploy/test_prometheus_live.py evaluates every `expr` below against a live cluster.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE_UID = "runnerfleet-prometheus"  # fixed in provisioning/datasources/prometheus.yml
DS = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"
SERVER_ERRORS = "INTERNAL|UNAVAILABLE|UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|DATA_LOSS"


# ------------------------------------------------------------------------------- helpers
def q(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range().datasource(DS)
    )


def quantiles(metric: str, by: str, sel: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)):
    """histogram_quantile queries, one per quantile, grouped `by` (a label list, may be empty)."""
    group = f"{by}, le" if by else "le"
    legend_by = " ".join("{{" + lbl.strip() + "}}" for lbl in by.split(",") if lbl.strip())
    out = []
    for i, quant in enumerate(qs):
        expr = f"histogram_quantile({quant}, sum by ({group}) (rate({metric}_bucket{sel}[{RATE}])))"
        legend = f"p{int(quant * 100)} {legend_by}".strip()
        out.append(q(expr, legend, chr(ord("A") + i)))
    return out


def ts(title: str, desc: str, unit: str, targets, w: int = 12, h: int = 8, stack: bool = False):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(desc)
        .unit(unit)
        .datasource(DS)
        .span(w)
        .height(h)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    for t in targets:
        panel = panel.with_target(t)
    return panel


def st(
    title: str,
    desc: str,
    unit: str,
    targets,
    w: int = 6,
    h: int = 4,
    mappings=None,
    text_mode: common.BigValueTextMode | None = None,
    thresholds=None,
):
    panel = (
        stat.Panel()
        .title(title)
        .description(desc)
        .unit(unit)
        .datasource(DS)
        .span(w)
        .height(h)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if text_mode is not None:
        panel = panel.text_mode(text_mode)
    if mappings:
        panel = panel.mappings(mappings)
    if thresholds:
        panel = panel.thresholds(thresholds)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


UP_MAPPINGS = [
    dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text="NOT SERVING", color="red"),
            "1": dm.ValueMappingResult(text="SERVING", color="green"),
        }
    )
]


def query_var(name: str, label: str, query: str, desc: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(desc)
        .datasource(DS)
        .query(
            {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"}
        )
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def base(uid: str, title: str, desc: str, tags: list[str]) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["runnerfleet", *tags])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .editable()
        .link(
            dashboard.DashboardLink("RunnerFleet")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["runnerfleet"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


# ------------------------------------------------------------------------------- dashboards
def cluster_overview() -> dashboard.Dashboard:
    g = "runnerfleet_gateway"
    d = base(
        "runnerfleet-cluster",
        "RunnerFleet / Cluster overview",
        "Traffic, errors, latency, in-flight work and retries seen by the gateways.",
        ["cluster"],
    )
    d = d.with_row(dashboard.Row("Golden signals"))
    d = d.with_panel(
        st(
            "Request rate",
            "Requests per second answered by all gateways (every status code).",
            "reqps",
            [q(f"sum(rate({g}_requests_total[{RATE}]))", "requests/s")],
        )
    )
    d = d.with_panel(
        st(
            "Error ratio",
            "Share of gateway requests that ended with a gRPC code other than OK "
            "(client errors included).",
            "percentunit",
            [
                q(
                    f'(sum(rate({g}_requests_total{{code!="OK"}}[{RATE}])) or vector(0)) '
                    f"/ sum(rate({g}_requests_total[{RATE}]))",
                    "errors",
                )
            ],
            thresholds=thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        st(
            "p99 latency",
            "99th percentile of end-to-end request latency at the gateway, all models.",
            "s",
            [
                q(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate({g}_request_duration_seconds_bucket[{RATE}])))",
                    "p99",
                )
            ],
            thresholds=thresholds((None, "green"), (0.2, "orange"), (0.5, "red")),
        )
    )
    d = d.with_panel(
        st(
            "Workers serving",
            "Workers SERVING in the gateways' pools, out of the workers the gateways discovered.",
            "none",
            [q(f"sum({g}_worker_up)", "serving", "A"), q(f"sum({g}_workers)", "in pool", "B")],
            thresholds=thresholds((None, "red"), (1, "green")),
        )
    )

    d = d.with_row(dashboard.Row("Traffic and errors"))
    d = d.with_panel(
        ts(
            "Request rate by model",
            "Requests per second per model at the gateway, all codes.",
            "reqps",
            [q(f"sum by (model) (rate({g}_requests_total[{RATE}]))", "{{model}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Errors by code",
            "Gateway requests per second that ended with a non-OK gRPC code, "
            "by code (INVALID_ARGUMENT and NOT_FOUND are client errors).",
            "reqps",
            [q(f'sum by (code) (rate({g}_requests_total{{code!="OK"}}[{RATE}]))', "{{code}}")],
            stack=True,
        )
    )
    d = d.with_panel(
        ts(
            "Server error ratio by model",
            "Share of requests per model failing with a server-side "
            f"code ({SERVER_ERRORS.replace('|', ', ')}); the RunnerFleetHighErrorRate alert fires "
            "above 5%.",
            "percentunit",
            [
                q(
                    "(sum by (model) "
                    f'(rate({g}_requests_total{{code=~"{SERVER_ERRORS}"}}[{RATE}])) '
                    f"or 0 * sum by (model) (rate({g}_requests_total[{RATE}]))) "
                    f"/ sum by (model) (rate({g}_requests_total[{RATE}]))",
                    "{{model}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Gateway rejections by reason",
            "Requests the gateway refused before forwarding "
            "(overload, unauthenticated, no_worker).",
            "reqps",
            [q(f"sum by (reason) (rate({g}_rejected_total[{RATE}]))", "{{reason}}")],
        )
    )

    d = d.with_row(dashboard.Row("Latency"))
    d = d.with_panel(
        ts(
            "End-to-end latency p50 / p95 / p99",
            "Gateway request latency quantiles over all "
            "models, from receiving the request to sending the reply.",
            "s",
            quantiles(f"{g}_request_duration_seconds", ""),
        )
    )
    d = d.with_panel(
        ts(
            "p99 latency by model",
            "99th percentile of gateway request latency per model; the "
            "RunnerFleetP99OverBudget alert fires above 500ms.",
            "s",
            quantiles(f"{g}_request_duration_seconds", "model", qs=(0.99,)),
        )
    )
    d = d.with_panel(
        ts(
            "Forward hop p99 by worker",
            "99th percentile of one gateway-to-worker forward "
            "(coalesced batch round trip) per worker.",
            "s",
            quantiles(f"{g}_forward_duration_seconds", "worker", qs=(0.99,)),
        )
    )
    d = d.with_panel(
        ts(
            "Requests per coalesced forward",
            "Mean number of client requests the gateway packs into one forward to a worker.",
            "short",
            [
                q(
                    f"sum by (worker) (rate({g}_forward_batch_size_requests_sum[{RATE}])) "
                    f"/ sum by (worker) (rate({g}_forward_batch_size_requests_count[{RATE}]))",
                    "{{worker}}",
                )
            ],
        )
    )

    d = d.with_row(dashboard.Row("Load and retries"))
    d = d.with_panel(
        ts(
            "In-flight requests by worker",
            "Requests the gateway has sent to each worker and not yet seen answered.",
            "short",
            [q(f"sum by (worker) ({g}_inflight_requests)", "{{worker}}")],
            stack=True,
        )
    )
    d = d.with_panel(
        ts(
            "Retries by model",
            "Requests per second the gateway retried on another worker "
            "(worker unavailable or draining).",
            "reqps",
            [q(f"sum by (model) (rate({g}_retries_total[{RATE}]))", "{{model}}")],
        )
    )
    return d


def per_model() -> dashboard.Dashboard:
    w = "runnerfleet_worker"
    sel = '{model=~"$model", method=~"$method"}'
    d = base(
        "runnerfleet-model",
        "RunnerFleet / Per model",
        "Adaptive batching per model method in the workers: batch sizes, queue wait versus "
        "inference time, shed and rejected requests.",
        ["model"],
    )
    d = d.with_variable(
        query_var(
            "model", "Model", f"label_values({w}_requests_total, model)", "Model name in the store."
        )
    )
    d = d.with_variable(
        query_var(
            "method",
            "Method",
            f'label_values({w}_requests_total{{model=~"$model"}}, method)',
            "Runner method (predict, __call__, ...).",
        )
    )

    d = d.with_row(dashboard.Row("Requests"))
    d = d.with_panel(
        ts(
            "Worker requests by code",
            "Requests per second the workers answered, per model method and gRPC code.",
            "reqps",
            [
                q(
                    f"sum by (model, method, code) (rate({w}_requests_total{sel}[{RATE}]))",
                    "{{model}}.{{method}} {{code}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Worker latency p50 / p99",
            "End-to-end latency inside the worker (queue wait, "
            "batching and inference) per model method.",
            "s",
            quantiles(f"{w}_request_duration_seconds", "model, method", sel, qs=(0.5, 0.99)),
        )
    )

    d = d.with_row(dashboard.Row("Batching"))
    d = d.with_panel(
        ts(
            "Batch size in rows",
            "Rows per executed batch: mean and p95 per model method "
            "(histogram buckets 1, 2, 4, ... 1024).",
            "short",
            [
                q(
                    f"sum by (model, method) (rate({w}_batch_size_rows_sum{sel}[{RATE}])) / "
                    f"sum by (model, method) (rate({w}_batch_size_rows_count{sel}[{RATE}]))",
                    "mean {{model}}.{{method}}",
                    "A",
                ),
                *[
                    t.ref_id("B")
                    for t in quantiles(f"{w}_batch_size_rows", "model, method", sel, qs=(0.95,))
                ],
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Batch size in requests",
            "Client requests coalesced into one executed batch: mean and p95 per model method.",
            "short",
            [
                q(
                    f"sum by (model, method) (rate({w}_batch_size_requests_sum{sel}[{RATE}])) / "
                    f"sum by (model, method) (rate({w}_batch_size_requests_count{sel}[{RATE}]))",
                    "mean {{model}}.{{method}}",
                    "A",
                ),
                *[
                    t.ref_id("B")
                    for t in quantiles(f"{w}_batch_size_requests", "model, method", sel, qs=(0.95,))
                ],
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Queue wait vs inference (p50)",
            "Median time a request waits in the batching queue "
            "next to the median time one batch takes to run.",
            "s",
            [
                q(
                    f"histogram_quantile(0.5, sum by (model, method, le) "
                    f"(rate({w}_queue_wait_seconds_bucket{sel}[{RATE}])))",
                    "queue wait {{model}}.{{method}}",
                    "A",
                ),
                q(
                    f"histogram_quantile(0.5, sum by (model, method, le) "
                    f"(rate({w}_inference_duration_seconds_bucket{sel}[{RATE}])))",
                    "inference {{model}}.{{method}}",
                    "B",
                ),
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Queue wait vs inference (p99)",
            "99th percentile of queue wait next to the 99th "
            "percentile of batch inference time; the RunnerFleetQueueWaitOverBudget alert fires "
            "when queue wait p99 exceeds 200ms.",
            "s",
            [
                q(
                    f"histogram_quantile(0.99, sum by (model, method, le) "
                    f"(rate({w}_queue_wait_seconds_bucket{sel}[{RATE}])))",
                    "queue wait {{model}}.{{method}}",
                    "A",
                ),
                q(
                    f"histogram_quantile(0.99, sum by (model, method, le) "
                    f"(rate({w}_inference_duration_seconds_bucket{sel}[{RATE}])))",
                    "inference {{model}}.{{method}}",
                    "B",
                ),
            ],
        )
    )

    d = d.with_row(dashboard.Row("Back-pressure"))
    d = d.with_panel(
        ts(
            "Queue depth",
            "Requests waiting in the batching queues, summed over workers.",
            "short",
            [q(f"sum by (model, method) ({w}_queue_depth{sel})", "{{model}}.{{method}}")],
            w=8,
        )
    )
    d = d.with_panel(
        ts(
            "Shed by reason",
            "Requests per second dropped before inference (deadline, latency_budget, cancelled).",
            "reqps",
            [
                q(
                    f"sum by (model, method, reason) (rate({w}_shed_total{sel}[{RATE}]))",
                    "{{model}}.{{method}} {{reason}}",
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        ts(
            "Rejected by reason",
            "Requests per second refused at admission (queue_full, invalid_input).",
            "reqps",
            [
                q(
                    f"sum by (model, method, reason) (rate({w}_rejected_total{sel}[{RATE}]))",
                    "{{model}}.{{method}} {{reason}}",
                )
            ],
            w=8,
        )
    )
    return d


def per_worker() -> dashboard.Dashboard:
    w = "runnerfleet_worker"
    inst = '{instance=~"$instance"}'
    d = base(
        "runnerfleet-worker",
        "RunnerFleet / Per worker",
        "Health, device, queues and model load time of each worker process.",
        ["worker"],
    )
    d = d.with_variable(
        query_var(
            "instance",
            "Worker",
            f"label_values({w}_up, instance)",
            "Worker metrics endpoint (host:port) as Prometheus scrapes it.",
        )
    )

    d = d.with_row(dashboard.Row("Health"))
    d = d.with_panel(
        st(
            "Health",
            "1 when the worker reports SERVING on gRPC health, 0 while it loads models or drains.",
            "none",
            [q(f"max by (instance, worker) ({w}_up{inst})", "{{worker}}")],
            w=8,
            mappings=UP_MAPPINGS,
            thresholds=thresholds((None, "red"), (1, "green")),
        )
    )
    d = d.with_panel(
        st(
            "Device",
            "Device each worker runs its models on (cpu or cuda:N).",
            "none",
            [q(f"max by (instance, worker, device) ({w}_up{inst})", "{{device}}")],
            w=8,
            text_mode=common.BigValueTextMode.NAME,
        )
    )
    d = d.with_panel(
        st(
            "Scrape up",
            "1 when Prometheus can scrape the worker's /metrics endpoint.",
            "none",
            [q('up{job="runnerfleet-worker", instance=~"$instance"}', "{{instance}}")],
            w=8,
            mappings=[
                dm.ValueMap(
                    options={
                        "0": dm.ValueMappingResult(text="DOWN", color="red"),
                        "1": dm.ValueMappingResult(text="UP", color="green"),
                    }
                )
            ],
            thresholds=thresholds((None, "red"), (1, "green")),
        )
    )

    d = d.with_row(dashboard.Row("Work"))
    d = d.with_panel(
        ts(
            "Requests per worker",
            "Requests per second each worker answered, all codes.",
            "reqps",
            [q(f"sum by (instance) (rate({w}_requests_total{inst}[{RATE}]))", "{{instance}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Queue depth per worker",
            "Requests waiting in each worker's batching queues, per model method.",
            "short",
            [
                q(
                    f"sum by (instance, model, method) ({w}_queue_depth{inst})",
                    "{{instance}} {{model}}.{{method}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Batch inference p99 per worker",
            "99th percentile of one batch's inference time on each worker.",
            "s",
            quantiles(f"{w}_inference_duration_seconds", "instance", inst, qs=(0.99,)),
        )
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Model load time")
        .description("Seconds each worker took to load and warm up each model at start.")
        .unit("s")
        .datasource(DS)
        .span(12)
        .height(8)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(
            q(f"max by (instance, model) ({w}_model_load_seconds{inst})", "{{instance}} {{model}}")
        )
    )

    d = d.with_row(dashboard.Row("Seen from the gateway"))
    d = d.with_panel(
        ts(
            "Gateway pool membership",
            "1 while the gateway routes to the worker (SERVING in its "
            "pool), 0 otherwise; one series per worker gRPC address.",
            "none",
            [q("max by (worker) (runnerfleet_gateway_worker_up)", "{{worker}}")],
        )
    )
    d = d.with_panel(
        ts(
            "In-flight at the gateway",
            "Requests the gateway has outstanding on each worker.",
            "short",
            [q("sum by (worker) (runnerfleet_gateway_inflight_requests)", "{{worker}}")],
        )
    )
    return d


BUILTIN_ANNOTATIONS = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}

DASHBOARDS = {
    "runnerfleet-cluster.json": cluster_overview,
    "runnerfleet-model.json": per_model,
    "runnerfleet-worker.json": per_worker,
}


def render() -> dict[str, str]:
    out = {}
    for name, make in DASHBOARDS.items():
        board = json.loads(json.dumps(make().build(), cls=JSONEncoder))
        # unique panel ids (rows included) and Grafana's built-in annotation layer
        for i, panel in enumerate(board["panels"], start=1):
            panel["id"] = i
        board["annotations"] = {"list": [BUILTIN_ANNOTATIONS]}
        board["version"] = 1
        out[name] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the JSON drifted")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    drift = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if drift:
        print(
            f"dashboards drifted from generate_dashboards.py: {', '.join(drift)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
