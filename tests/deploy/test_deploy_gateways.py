"""deploy/ runs two gateways (issue 10): compose `gateway` and `gateway-2`, k8s replicas >= 2,
both scraped by Prometheus; so a client given both addresses rides out a gateway restart."""

from __future__ import annotations

import yaml
from deploy_support import DEPLOY, load_compose


def test_compose_runs_two_gateways_on_distinct_host_ports() -> None:
    services = load_compose()["services"]
    first, second = services["gateway"], services["gateway-2"]
    assert first["command"] == second["command"]  # the same gateway, twice
    assert second["healthcheck"] == first["healthcheck"]
    assert second["depends_on"] == first["depends_on"]
    ports = [*first["ports"], *second["ports"]]
    host_sides = [p.rsplit(":", 1)[0] for p in ports]  # "${BIND}:${PORT:-8001}"
    assert len(set(host_sides)) == 4
    assert [p.rsplit(":", 1)[1] for p in second["ports"]] == ["8001", "8002"]
    assert "8101" in second["ports"][0] and "8102" in second["ports"][1]


def test_k8s_runs_at_least_two_gateway_replicas() -> None:
    docs = yaml.safe_load_all((DEPLOY / "k8s" / "base" / "gateway-deployment.yaml").read_text())
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    assert deployment["spec"]["replicas"] >= 2


def test_prometheus_scrapes_both_gateways() -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "runnerfleet-gateway")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert {"gateway:8002", "gateway-2:8002"} <= targets
