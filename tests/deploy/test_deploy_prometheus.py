"""A real Prometheus (Debian's package) scrapes the compose cluster (run as local processes)
under load, with deploy/prometheus/prometheus.yml adapted only where a container network differs:
targets (service names and DNS-SD names become the replicas' loopback addresses, as Prometheus's
DNS-SD asks a DNS server, not /etc/hosts) and, to keep the test short, 1s scrape and rule
intervals. Then every PromQL expression of every Grafana dashboard and every alert rule is
evaluated through the HTTP API and must return data: a panel that shows nothing is a defect."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from deploy_support import DEPLOY, LocalCompose, die_with_parent, need_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(480)]

RULES_FILE = DEPLOY / "prometheus" / "rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
# Grafana's built-in variables, as Grafana would fill them for this test's 1s scrape interval
# ($__rate_interval = max($__interval + scrape, 4 * scrape), with a little slack)
GRAFANA_BUILTINS = {"$__rate_interval": "5s", "$__interval": "1s", "$__range": "60s",
                    "${__rate_interval}": "5s", "${__interval}": "1s"}  # fmt: skip
LISTENING = re.compile(r'msg="Listening on" address=(127\.0\.0\.1:[0-9]+)')
COMPARISON = re.compile(
    r"^(?P<signal>.*?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+(?:e-?[0-9]+)?\s*$", re.S
)


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: Any) -> Any:
        reply = requests.get(self.base + path, params=params, timeout=30)
        body = reply.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query_range", query=expr, start=start, end=end, step="1s")
        return data["result"]


def adapt_config(cluster: LocalCompose, prom_address: str) -> dict[str, Any]:
    """The project's prometheus.yml with container targets mapped to the local replicas."""
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    cfg["rule_files"] = [str(DEPLOY / "prometheus" / f) for f in cfg["rule_files"]]

    def local(target: str) -> list[str]:
        host, _, port = target.rpartition(":")
        if host in ("127.0.0.1", "localhost") and port == "9090":
            return [prom_address]
        assert host in cluster.ips, f"target {target} names no compose service"
        return [f"{ip}:{cluster.mapped(int(port))}" for ip in cluster.ips[host]]

    for job in cfg["scrape_configs"]:
        job["scrape_interval"] = "1s"
        statics = [
            {**sc, "targets": [t for x in sc["targets"] for t in local(x)]}
            for sc in job.get("static_configs", [])
        ]
        for sd in job.pop("dns_sd_configs", []):
            assert sd.get("type", "SRV") == "A", "only A-record DNS-SD is mapped here"
            targets = [t for name in sd["names"] for t in local(f"{name}:{sd['port']}")]
            statics.append({"targets": targets})
        job["static_configs"] = statics
    return cfg


@pytest.fixture(scope="module")
def prom(compose_cluster: LocalCompose, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    binary = need_tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    cfg_file = tmp / "prometheus.yml"
    # Port 0: Prometheus logs the address it bound ("Listening on"); its self-scrape target is
    # then written into the config and reloaded, so no port is guessed before it starts.
    cfg_file.write_text(yaml.safe_dump(adapt_config(compose_cluster, "127.0.0.1:0")))
    log_path = tmp / "prometheus.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg_file}", f"--storage.tsdb.path={tmp / 'data'}",
         "--web.listen-address=127.0.0.1:0", "--log.level=info", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
        start_new_session=True, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (bound := LISTENING.search(log_path.read_text(errors="replace"))):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "Prometheus did not report its address"
            time.sleep(0.2)
        address = bound.group(1)
        cfg_file.write_text(yaml.safe_dump(adapt_config(compose_cluster, address)))
        base = f"http://{address}"
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/-/ready", timeout=2).status_code == 200:
                    requests.post(base + "/-/reload", timeout=10).raise_for_status()
                    break
            assert time.monotonic() < deadline, "Prometheus not ready"
            time.sleep(0.3)
        p = Prom(base)
        while True:  # every target scraped successfully at least once
            targets = p.get("/api/v1/targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                break
            assert time.monotonic() < deadline, json.dumps(targets, indent=1)[-4000:]
            time.sleep(0.5)
        yield p
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def window(compose_cluster: LocalCompose, prom: Prom) -> tuple[float, float]:
    """Load the cluster (incl. some bad requests) while Prometheus scrapes; the time window."""
    from deploy_load import Load

    compose_cluster.ensure_healthy()
    start = time.time()
    load = Load(compose_cluster.grpc_address("gateway"))
    try:
        codes = load.run(seconds=8, threads=8)
    finally:
        load.close()
    assert codes[("good", "OK")] > 30, dict(codes)
    assert sum(v for (kind, _), v in codes.items() if kind == "bad") > 0
    time.sleep(3)  # a few more scrapes and rule evaluations
    return start, time.time()


def finite_points(result: list[dict[str, Any]]) -> int:
    return sum(
        1 for series in result for _, v in series.get("values", [])
        if math.isfinite(float(v))
    )  # fmt: skip


def grafana_expand(expr: str, values: dict[str, str]) -> str:
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    for name in sorted(values, key=len, reverse=True):
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            expr = expr.replace(form, values[name])
    return expr


def dashboard_variables(
    board: dict[str, Any], prom: Prom, start: float, end: float
) -> dict[str, str]:
    """Each query variable's values from Prometheus, formatted as Grafana formats a multi-value
    (All) selection for a regex matcher: (a|b|c)."""
    values: dict[str, str] = {}
    for var in board.get("templating", {}).get("list", []):
        assert var["type"] == "query", var["name"]
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", grafana_expand(query, values))
        assert m, f"variable {var['name']}: unsupported query {query}"
        selector, label = m.groups()
        got = prom.get(f"/api/v1/label/{label}/values", **{"match[]": selector},
                       start=start, end=end)  # fmt: skip
        assert got, f"variable ${var['name']} ({query}) has no values"
        # Grafana regex-escapes each value for a PromQL string literal: "." -> "\\."
        escaped = (re.escape(v).replace("\\", "\\\\") for v in got)
        values[var["name"]] = "(" + "|".join(escaped) + ")"
    return values


def panel_targets(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for p in board.get("panels", []):
        for inner in [p, *p.get("panels", [])]:
            for t in inner.get("targets", []):
                yield inner["title"], t


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_query_returns_data(
    path: Any, prom: Prom, window: tuple[float, float]
) -> None:
    start, end = window
    board = json.loads(path.read_text())
    values = dashboard_variables(board, prom, start, end)
    empty = []
    for title, target in panel_targets(board):
        expr = grafana_expand(target["expr"], values)
        assert "$" not in expr, f"{title}: unexpanded variable in {expr}"
        if not finite_points(prom.range(expr, start, end)):
            empty.append(f"{title} [{target['refId']}]: {expr}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_rule_evaluates_and_sees_its_signal(
    prom: Prom, window: tuple[float, float]
) -> None:
    start, end = window
    loaded = prom.get("/api/v1/rules")["groups"]
    assert sum(len(g["rules"]) for g in loaded) == len(alert_rules()), "rules.yml not loaded"
    for g in loaded:
        for r in g["rules"]:
            assert r["health"] == "ok", r
    blind = []
    for rule in alert_rules():
        prom.instant(rule["expr"])  # the whole expression evaluates
        m = COMPARISON.match(rule["expr"].strip())
        signal_expr = m.group("signal") if m else rule["expr"]
        if not finite_points(prom.range(signal_expr, start, end)):
            blind.append(f"{rule['alert']}: {signal_expr}")
    assert not blind, "alerts whose signal has no data (they could never fire):\n" + "\n".join(
        blind
    )


def test_worker_down_alert_fires(compose_cluster: LocalCompose, prom: Prom,
                                 window: tuple[float, float]) -> None:  # fmt: skip
    """Stop one worker replica: RunnerFleetWorkerDown goes pending (its `for:` is 1m) and the
    gateway's pool shows the worker as not SERVING; then the replica comes back."""
    compose_cluster.ensure_healthy()
    victim = compose_cluster.replicas["worker"][-1]
    instance = f"{victim.ip}:{compose_cluster.mapped(8002)}"
    compose_cluster.stop(victim)
    try:
        deadline = time.monotonic() + 30
        while True:
            alerts = prom.get("/api/v1/alerts")["alerts"]
            down = [a for a in alerts if a["labels"]["alertname"] == "RunnerFleetWorkerDown"]
            if any(a["labels"].get("instance") == instance for a in down):
                break
            assert time.monotonic() < deadline, f"RunnerFleetWorkerDown not raised: {alerts}"
            time.sleep(0.5)
        assert all(a["state"] in ("pending", "firing") for a in down)
    finally:  # back in the background; fixtures' users call ensure_healthy() first
        compose_cluster.restart(victim, wait=False)
