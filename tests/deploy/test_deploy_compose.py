"""The docker-compose services, run as local processes with the file's own commands,
environment, volumes, replicas, start-up order and healthchecks (see conftest.LocalCompose)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import time

import pytest
import requests
import yaml
from deploy_support import DEPLOY, VENV_BIN, LocalCompose, need_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


def scrape(url: str) -> str:
    reply = requests.get(url, timeout=10)
    reply.raise_for_status()
    return reply.text


def sample(text: str, metric: str, **labels: str) -> list[float]:
    """Values of `metric` whose labels include `labels` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != metric:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            out.append(float(m.group(3)))
    return out


def test_store_init_seeded_the_shared_volume(compose_cluster: LocalCompose) -> None:
    (store_init,) = compose_cluster.replicas["store-init"]
    assert store_init.proc is not None
    assert store_init.proc.returncode == 0
    env = compose_cluster.service_env("worker", compose_cluster.ips["worker"][0])
    assert env["RUNNERFLEET_HOME"] == str(compose_cluster.volumes["store"])
    res = subprocess.run(
        [str(VENV_BIN / "runnerfleet"), "models", "list", "-o", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "iris_clf" in res.stdout, res.stdout
    assert "digits_mlp" in res.stdout, res.stdout


def test_every_replica_is_healthy_by_its_compose_healthcheck(compose_cluster: LocalCompose) -> None:
    compose_cluster.ensure_healthy()
    assert len(compose_cluster.replicas["worker"]) >= 2
    for name in ("worker", "gateway"):
        for rep in compose_cluster.replicas[name]:
            assert rep.proc is not None, rep.log_tail()
            assert rep.proc.poll() is None, rep.log_tail()
            assert compose_cluster.healthy(rep), f"{rep.name}:\n{rep.log_tail()}"


def test_gateway_discovers_every_worker_replica(compose_cluster: LocalCompose) -> None:
    compose_cluster.ensure_healthy()
    workers = compose_cluster.replicas["worker"]
    want = {compose_cluster.grpc_address("worker", r.index) for r in workers}
    deadline = time.monotonic() + 30
    while True:
        text = scrape(compose_cluster.metrics_url("gateway"))
        up = {
            addr
            for addr in want
            if sample(text, "runnerfleet_gateway_worker_up", worker=addr) == [1.0]
        }
        if up == want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert up == want, (
        f"gateway pool {sorted(up)} != worker replicas {sorted(want)}\n{text[-3000:]}"
    )
    assert sample(text, "runnerfleet_gateway_workers") == [float(len(want))]


def test_inference_through_the_gateway_reaches_every_worker(compose_cluster: LocalCompose) -> None:
    from deploy_load import Load

    compose_cluster.ensure_healthy()
    load = Load(compose_cluster.grpc_address("gateway"))
    try:
        codes = load.run(seconds=4, threads=8)
    finally:
        load.close()
    good_ok = codes[("good", "OK")]
    good_failed = {k: v for k, v in codes.items() if k[0] == "good" and k[1] != "OK"}
    assert good_ok > 20, dict(codes)
    assert not good_failed, dict(codes)
    assert codes[("bad", "OK")] == 0, dict(codes)
    served = {}
    for rep in compose_cluster.replicas["worker"]:
        text = scrape(compose_cluster.metrics_url("worker", rep.index))
        served[rep.name] = sum(sample(text, "runnerfleet_worker_requests_total", code="OK"))
        assert sample(text, "runnerfleet_worker_up") == [1.0]
    assert all(v > 0 for v in served.values()), f"some replica got no traffic: {served}"


def test_k8s_init_container_waits_on_the_real_cli(
    compose_cluster: LocalCompose, tmp_path: pathlib.Path
) -> None:
    """The Kubernetes workers' init container polls `runnerfleet models get`: its condition is
    true on the seeded store and false on an empty one."""
    res = subprocess.run(
        [need_tool("kubectl", VENV_BIN / "kubectl"), "kustomize", str(DEPLOY / "k8s")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    worker = next(
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "runnerfleet-worker"
    )
    (init,) = worker["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][-1]
    condition = re.search(r"until (.+?);\s*do", script, re.S)
    assert condition, script
    env = compose_cluster.service_env("worker", compose_cluster.ips["worker"][0])
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    seeded = subprocess.run(["sh", "-c", condition.group(1)], env=env, timeout=120)
    assert seeded.returncode == 0
    env["RUNNERFLEET_HOME"] = str(tmp_path / "empty-store")
    empty = subprocess.run(["sh", "-c", condition.group(1)], env=env, timeout=120)
    assert empty.returncode != 0
    # the Job seeds the store with the same command as the compose store-init service
    job = next(d for d in docs if d["kind"] == "Job")
    job_cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert job_cmd == compose_cluster.services["store-init"]["command"]
