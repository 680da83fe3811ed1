"""Kubernetes manifests, as close to proven as a machine without an API server allows:
`kubectl kustomize` renders the base and every overlay, `kubernetes-validate --strict` checks
every rendered object against the API schemas of the oldest and newest Kubernetes versions the
manifests support, and the properties deploy/README.md promises are asserted on the output
(probes, replicas, disruption budgets, anti-affinity, drain timing, autoscaling metrics, GPUs)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from typing import Any

import pytest
import yaml
from deploy_support import REPO, VENV_BIN, need_module, need_tool

OVERLAYS = ["deploy/k8s", "deploy/k8s/base", "deploy/k8s/overlays/gpu",
            "deploy/k8s/overlays/autoscale"]  # fmt: skip
# native gRPC probes are GA (on by default, stable field) from 1.27; the newest schemas
# kubernetes-validate ships
K8S_VERSIONS = ["1.27.0", "1.37.0"]
# worker drain timeout (runner_worker/settings.py: drain_timeout_s) that the grace period covers
WORKER_DRAIN_TIMEOUT_S = 30.0


def render(path: str) -> list[dict[str, Any]]:
    kubectl = need_tool("kubectl", VENV_BIN / "kubectl")
    res = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True,
                         timeout=60, cwd=REPO)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def objects(path: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in render(path)}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", OVERLAYS)
def test_rendered_objects_pass_kubernetes_validate_strict(path: str, version: str) -> None:
    kv = need_module("kubernetes_validate")
    docs = render(path)
    assert docs
    failures, unknown = [], []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kv.validate(doc, version, strict=True)
        except kv.SchemaNotFoundError:
            # a CRD's kind (KEDA, prometheus-operator...) has no schema in the tool: none here
            unknown.append(where)
        except kv.ValidationError as exc:
            failures.append(f"{where}: {exc.message} at {list(exc.path)}")
    assert not unknown, f"objects with no schema in kubernetes-validate {version}: {unknown}"
    assert not failures, "\n".join(failures)


def test_validation_catches_a_bad_field_and_a_string_replicas() -> None:
    """The strict check fails what an API server would refuse (so the test above means it)."""
    kv = need_module("kubernetes_validate")
    worker = objects("deploy/k8s")[("Deployment", "runnerfleet-worker")]
    misspelt = yaml.safe_load(yaml.safe_dump(worker))
    misspelt["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kv.ValidationError):
        kv.validate(misspelt, K8S_VERSIONS[-1], strict=True)
    string_replicas = yaml.safe_load(yaml.safe_dump(worker))
    string_replicas["spec"]["replicas"] = "2"
    with pytest.raises(kv.ValidationError):
        kv.validate(string_replicas, K8S_VERSIONS[0], strict=True)


def containers(dep: dict[str, Any]) -> list[dict[str, Any]]:
    return dep["spec"]["template"]["spec"]["containers"]


def selects(selector: dict[str, Any], dep: dict[str, Any]) -> bool:
    labels = dep["spec"]["template"]["metadata"]["labels"]
    return selector["matchLabels"].items() <= labels.items()


def test_gateway_survives_node_loss_and_drains() -> None:
    objs = objects("deploy/k8s")
    gateway = objs[("Deployment", "runnerfleet-gateway")]
    assert gateway["spec"]["replicas"] >= 2
    pdb = objs[("PodDisruptionBudget", "runnerfleet-gateway")]
    assert selects(pdb["spec"]["selector"], gateway)
    assert pdb["spec"]["minAvailable"] >= 1, "the budget must allow a node drain"
    assert pdb["spec"]["minAvailable"] < gateway["spec"]["replicas"], (
        "the budget must allow a node drain"
    )
    anti = gateway["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and selects(t["podAffinityTerm"]["labelSelector"], gateway)
        for t in terms
    )
    from api_gateway.settings import GatewaySettings

    grace_s = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    for c in containers(gateway):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == 8001, probe
        assert grace_s > prestop_s(c) + default(GatewaySettings, "stop_grace_s")


def prestop_s(container: dict[str, Any]) -> float:
    cmd = container["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep", cmd
    assert len(cmd) == 2, cmd
    return float(cmd[1])


@pytest.mark.parametrize(
    ("path", "name"),
    [("deploy/k8s", "runnerfleet-worker"), ("deploy/k8s/overlays/gpu", "runnerfleet-worker-gpu")],
)
def test_workers_leave_the_pool_then_drain_within_the_grace_period(path: str, name: str) -> None:
    from runner_worker.settings import WorkerSettings

    assert default(WorkerSettings, "drain_timeout_s") == WORKER_DRAIN_TIMEOUT_S
    gateway_refresh_s = _gateway_dns_refresh_s()
    worker = objects(path)[("Deployment", name)]
    spec = worker["spec"]["template"]["spec"]
    (c,) = containers(worker)
    wait_s = prestop_s(c)
    # the gateway re-resolves the headless Service at least twice before SIGTERM
    assert wait_s >= 2 * gateway_refresh_s
    assert spec["terminationGracePeriodSeconds"] > wait_s + WORKER_DRAIN_TIMEOUT_S
    # the worker port is mTLS-only and kubelet's gRPC probe has no TLS: the image's script
    # asks gRPC health on 8001 with the pod's certificate (RUNNERFLEET_HEALTH_TLS_*)
    env = {e["name"]: e.get("value") for e in c["env"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][1:] == [
            "/opt/runnerfleet/healthcheck.py", "127.0.0.1:8001"], probe  # fmt: skip
    assert env["RUNNERFLEET_HEALTH_TLS_CA"] == env["RUNNERFLEET_TLS_CLIENT_CA"]
    assert env["RUNNERFLEET_HEALTH_TLS_CERT"] == env["RUNNERFLEET_TLS_CERT"]
    if name == "runnerfleet-worker":
        rolling = worker["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0
        assert rolling["maxSurge"] >= 1
        pdb = objects(path)[("PodDisruptionBudget", "runnerfleet-worker")]
        assert selects(pdb["spec"]["selector"], worker)


def default(settings_cls: type, name: str) -> float:
    """A settings dataclass' default (the value a container gets without flags)."""
    return float({f.name: f.default for f in dataclasses.fields(settings_cls)}[name])


def _gateway_dns_refresh_s() -> float:
    from api_gateway.settings import GatewaySettings

    return default(GatewaySettings, "dns_refresh_s")


def test_autoscaling_scales_on_queues_not_cpu_alone() -> None:
    objs = objects("deploy/k8s/overlays/autoscale")
    hpa = objs[("HorizontalPodAutoscaler", "runnerfleet-worker")]
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", "runnerfleet-worker")
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert "runnerfleet_worker_queue_depth" in pods, hpa["spec"]["metrics"]
    # every Pods metric is served by a prometheus-adapter rule over a real worker series
    rules_cm = objs[("ConfigMap", "runnerfleet-prometheus-adapter-rules")]
    rules = yaml.safe_load(rules_cm["data"]["config.yaml"])["rules"]
    served = {r["name"]["as"]: r for r in rules}
    assert set(pods) <= set(served), (pods, sorted(served))
    metrics_src = (REPO / "runner_worker" / "metrics.py").read_text()
    for name in pods:
        series = re.match(r"(\w+)\{", served[name]["seriesQuery"])
        assert series, served[name]["seriesQuery"]
        base = re.sub(r"_(bucket|sum|count)$", "", series.group(1))
        assert f'"{base}"' in metrics_src, f"{base}: not a worker metric"
        assert re.search(served[name]["name"]["matches"], series.group(1))
        assert {"namespace", "pod"} <= set(served[name]["resources"]["overrides"])


def test_gpu_overlay_requests_gpus() -> None:
    gpu = objects("deploy/k8s/overlays/gpu")[("Deployment", "runnerfleet-worker-gpu")]
    (c,) = containers(gpu)
    assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert str(c["resources"]["requests"]["nvidia.com/gpu"]) == "1"
