"""deploy/ checked with the real tools, offline: docker-compose, promtool, kustomize, the
kubernetes client's models, Grafana's provisioning rules, and the image's health check script.
Needs only what deploy/test-deps.sh installs; no running cluster."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from concurrent import futures
from typing import Any

import pytest
import yaml
from deploy_support import (
    COMPOSE_FILE,
    DEPLOY,
    IMAGE_FILES,
    REPO,
    VENV_BIN,
    load_compose,
    need_module,
    need_tool,
)

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
OVERLAYS = ["deploy/k8s", "deploy/k8s/base", "deploy/k8s/overlays/gpu",
            "deploy/k8s/overlays/autoscale"]  # fmt: skip


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)


# --------------------------------------------------------------------------- compose
@pytest.mark.parametrize("profile", [None, "gpu"])
def test_compose_config_is_valid(profile: str | None) -> None:
    compose = need_tool("docker-compose")
    extra = ["--profile", profile] if profile else []
    res = run(compose, "-f", str(COMPOSE_FILE), *extra, "config", "-q")
    assert res.returncode == 0, res.stderr
    listed = run(compose, "-f", str(COMPOSE_FILE), *extra, "config", "--services")
    services = set(listed.stdout.split())
    assert {"store-init", "worker", "gateway", "prometheus", "grafana", "worker-gpu"} <= services


def test_named_volume_mount_points_belong_to_the_image_user() -> None:
    """A named volume mounted on a folder the image lacks starts root-owned: the non-root
    processes (certs-init writing `certs`, store-init writing `store`) then fail with EACCES.
    Docker copies an existing image folder's owner into an empty volume, so every such mount
    point must be created, and chowned to the image user, in the final stage."""
    dockerfile = need_module("dockerfile")
    cmds = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    final = cmds[[i for i, c in enumerate(cmds) if c.cmd == "FROM"][-1] :]
    runs = " ".join(v for c in final if c.cmd == "RUN" for v in c.value)
    (mkdir,) = re.findall(r"mkdir -p ([^&]+)&&", runs)
    created = set(mkdir.split())
    assert "chown -R runnerfleet:runnerfleet /var/lib/runnerfleet" in runs
    compose = load_compose()
    named = set(compose["volumes"])
    for name, svc in compose["services"].items():
        if not str(svc.get("image", "")).startswith("runnerfleet"):
            continue
        for mount in svc.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source in named:
                assert target in created, f"{name}: {target} is not created in the image"
                assert target.startswith("/var/lib/runnerfleet/"), f"{name}: {target} not chowned"


def test_compose_wiring() -> None:
    c = load_compose()
    s = c["services"]
    # one image for every project role
    images = {s[n]["image"] for n in ("store-init", "worker", "gateway")}
    assert images == {"runnerfleet:latest"}
    for name in ("store-init", "worker", "gateway", "worker-gpu"):
        assert s[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    # store-init seeds the named volume that every worker mounts at RUNNERFLEET_HOME
    assert s["store-init"]["command"][:3] == ["runnerfleet", "models", "seed-demo"]
    home = s["store-init"]["environment"]["RUNNERFLEET_HOME"]
    for name in ("store-init", "worker", "worker-gpu"):
        assert f"store:{home}" in s[name]["volumes"], name
        assert s[name]["environment"]["RUNNERFLEET_HOME"] == home
    # start-up order
    assert s["worker"]["depends_on"]["store-init"]["condition"] == "service_completed_successfully"
    assert s["gateway"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert s["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # gateway: Triton's ports, discovery of the worker replicas by DNS
    # published on 8001/8002 unless RUNNERFLEET_GRPC_PORT / RUNNERFLEET_METRICS_PORT say otherwise
    published = {re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", p) for p in s["gateway"]["ports"]}
    assert {"0.0.0.0:8001:8001", "0.0.0.0:8002:8002"} <= published, published
    cmd = s["gateway"]["command"]
    assert cmd[cmd.index("--workers-dns") + 1] == "worker:8001"
    assert s["worker"]["deploy"]["replicas"] >= 2
    # GPU worker: profile, NVIDIA reservation, joins the worker DNS name, runs on cuda
    gpu = s["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    dev = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["driver"] == "nvidia"
    assert "gpu" in dev["capabilities"]
    assert "worker" in gpu["networks"]["default"]["aliases"]
    assert gpu["command"][gpu["command"].index("--device") + 1].startswith("cuda:")
    # a one-shot job makes the dev certificates into a volume; workers take mTLS only, the
    # gateway verifies them and presents its own certificate
    assert s["certs-init"]["command"][:2] == ["runnerfleet", "certs"]
    for name in ("worker", "worker-gpu"):
        env = s[name]["environment"]
        assert env["RUNNERFLEET_TLS_CLIENT_CA"], name
        assert env["RUNNERFLEET_TLS_CERT"], name
        assert s[name]["depends_on"]["certs-init"]["condition"] == "service_completed_successfully"
    assert s["gateway"]["environment"]["RUNNERFLEET_WORKER_TLS_CA"]
    for name in ("worker", "worker-gpu", "gateway"):
        assert s[name]["environment"]["RUNNERFLEET_HOST"] == "0.0.0.0", name
    # healthchecks ask gRPC health through the script the image carries
    for name in ("worker", "worker-gpu", "gateway"):
        test = s[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        assert test[2] in IMAGE_FILES, test
    # Prometheus and Grafana are provisioned from this folder
    assert "./prometheus:/etc/prometheus:ro" in s["prometheus"]["volumes"]
    mounts = s["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    dash_mount = next(m for m in mounts if m.startswith("./grafana/dashboards:"))
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/runnerfleet.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == dash_mount.split(":")[1]


def test_dockerfile_builds_without_a_registry_frontend() -> None:
    """No `# syntax=` line (BuildKit would fetch that frontend image from a registry) and no
    BuildKit-only flags (the legacy builder refuses them)."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    dockerfile = need_module("dockerfile")
    for c in dockerfile.parse_file(str(DEPLOY / "Dockerfile")):
        for flag in c.flags:
            assert not flag.startswith(("--mount", "--chmod", "--link", "--security")), (c, flag)
    # both builders read the same context filter
    assert (REPO / ".dockerignore").read_text().splitlines()[2:] == (
        (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()[2:]
    )


def test_cuda_variant_builds_from_the_same_file() -> None:
    compose = need_tool("docker-compose")
    res = run(compose, "-f", str(COMPOSE_FILE), "--profile", "gpu", "config")
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]
    cpu, gpu = services["worker"]["build"], services["worker-gpu"]["build"]
    assert gpu["dockerfile"] == cpu["dockerfile"] == "deploy/Dockerfile"
    assert gpu["args"]["TORCH_INDEX_URL"].endswith("/whl/cu128")
    assert cpu["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
    text = (DEPLOY / "Dockerfile").read_text()
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in text


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    dockerfile = need_module("dockerfile")  # BuildKit's own parser, as a PyPI wheel
    cmds = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    froms = [i for i, c in enumerate(cmds) if c.cmd == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    pre = {c.value[0].split("=")[0] for c in cmds[: froms[0]] if c.cmd == "ARG"}
    assert "BASE_IMAGE" in pre, "CUDA variant needs a global BASE_IMAGE build argument"
    final = cmds[froms[-1] :]
    assert final[0].value[0] == "${BASE_IMAGE}"
    runs = " ".join(v for c in final if c.cmd == "RUN" for v in c.value)
    for tool in ("build-essential", "gcc", "apt-get install"):
        assert tool not in runs, f"{tool} in the final stage"
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, "final stage must not run as root"
    assert users[-1] not in ("root", "0"), "final stage must not run as root"
    (hc,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert hc.value[0] == "CMD", hc.value
    assert hc.value[2] in IMAGE_FILES, hc.value
    copies = {c.value[-1]: c.value[0] for c in final if c.cmd == "COPY"}
    for target, source in IMAGE_FILES.items():
        assert copies.get(target) == str(source.relative_to(REPO)), f"{target} not in the image"
    assert {"8001", "8002"} <= {v for c in final if c.cmd == "EXPOSE" for v in c.value}
    # torch: the project's pin, from the CPU index unless a CUDA index is passed
    pinned = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned
    assert f"ARG TORCH_VERSION={pinned.group(1)}" in text
    assert re.search(r"^ARG TORCH_INDEX_URL=\S+/whl/cpu$", text, re.M)
    # everything COPY takes from the context survives Dockerfile.dockerignore
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for c in cmds:
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for src in c.value[:-1]:
                assert src.rstrip("/") in allowed, f"COPY {src}: excluded by the dockerignore"


# --------------------------------------------------------------------------- prometheus
def test_promtool_check_config_and_rules() -> None:
    promtool = need_tool("promtool")
    res = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run(promtool, "check", "rules", str(DEPLOY / "prometheus" / "rules.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rule_unit_tests() -> None:
    promtool = need_tool("promtool")
    res = run(promtool, "test", "rules", str(DEPLOY / "prometheus" / "rules_test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_rules_have_docs_and_severity() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.add(rule["alert"])
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["description"]
    wanted = {"RunnerFleetWorkerDown", "RunnerFleetHighErrorRate", "RunnerFleetP99OverBudget",
              "RunnerFleetQueueSaturated"}  # fmt: skip
    assert wanted <= names


# --------------------------------------------------------------------------- kubernetes
def kubectl() -> str:
    return need_tool("kubectl", VENV_BIN / "kubectl")


def render(path: str) -> list[dict[str, Any]]:
    res = run(kubectl(), "kustomize", path)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def model_name(doc: dict[str, Any]) -> str:
    version = doc["apiVersion"].split("/")[-1]
    return version[0].upper() + version[1:] + doc["kind"]


def same(a: Any, b: Any, where: str = "") -> list[str]:
    """Differences between a manifest and its round trip through the client's models."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            if key not in b:
                out.append(f"{where}.{key}: unknown to the schema")
            elif key not in a:
                out.append(f"{where}.{key}: appeared")
            else:
                out += same(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: list length {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in same(x, y, f"{where}[{i}]")
        ]
    return [] if str(a) == str(b) else [f"{where}: {a!r} != {b!r}"]


@pytest.mark.parametrize("path", OVERLAYS)
def test_kustomize_renders_into_kubernetes_models(path: str) -> None:
    from kubernetes import client

    api = client.ApiClient()
    docs = render(path)
    assert docs
    for doc in docs:
        name = model_name(doc)
        assert hasattr(client, name), f"no kubernetes model for {doc['apiVersion']} {doc['kind']}"
        # validates required fields and types, as for an API server's reply
        obj = api.deserialize(json.dumps(doc), name, "application/json")
        back = api.sanitize_for_serialization(obj)
        diffs = same(doc, back, f"{doc['kind']}/{doc['metadata']['name']}")
        assert not diffs, diffs


def by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_k8s_base_semantics() -> None:
    objs = by_kind(render("deploy/k8s"))
    assert set(objs) >= {
        ("Namespace", "runnerfleet"), ("PersistentVolumeClaim", "runnerfleet-store"),
        ("Job", "runnerfleet-store-init"), ("Deployment", "runnerfleet-worker"),
        ("Service", "runnerfleet-worker"), ("Deployment", "runnerfleet-gateway"),
        ("Service", "runnerfleet-gateway"),
    }  # fmt: skip
    pvc = objs[("PersistentVolumeClaim", "runnerfleet-store")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    job = objs[("Job", "runnerfleet-store-init")]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "runnerfleet", "models", "seed-demo"]  # fmt: skip
    headless = objs[("Service", "runnerfleet-worker")]
    assert headless["spec"]["clusterIP"] == "None"
    worker = objs[("Deployment", "runnerfleet-worker")]
    selector = headless["spec"]["selector"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "headless Service must select the workers"
    gateway = objs[("Deployment", "runnerfleet-gateway")]
    gw_cmd = gateway["spec"]["template"]["spec"]["containers"][0]["command"]
    assert gw_cmd[gw_cmd.index("--workers-dns") + 1] == "runnerfleet-worker:8001"
    for dep in (worker, gateway):
        tmpl = dep["spec"]["template"]
        ann = tmpl["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert ann["prometheus.io/port"] == "8002"
        assert tmpl["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in tmpl["spec"]["containers"]:
            assert c["resources"]["requests"]["cpu"]
            assert c["resources"]["requests"]["memory"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if dep is gateway:
                    assert c[probe]["grpc"]["port"] == 8001, (c["name"], probe)
                else:  # mTLS port: kubelet's gRPC probe has no TLS, the image's script does
                    assert c[probe]["exec"]["command"][1:] == [
                        "/opt/runnerfleet/healthcheck.py", "127.0.0.1:8001"]  # fmt: skip
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env["RUNNERFLEET_HOST"] == "0.0.0.0"  # the CLI binds 127.0.0.1 by default
            cmd = c["command"]
            assert cmd[cmd.index("--port") + 1] == "8001"
            assert cmd[cmd.index("--metrics-port") + 1] == "8002"
    # the same commands as docker-compose (tested as processes there)
    compose = load_compose()["services"]
    wcmd = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert wcmd == compose["worker"]["command"]
    # cluster traffic: workers take mTLS from Secrets with cert-manager's file names, the
    # gateway verifies them and presents its own certificate
    secrets = {
        v["secret"]["secretName"]: v["name"]
        for dep in (worker, gateway)
        for v in dep["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert set(secrets) == {"runnerfleet-worker-tls", "runnerfleet-gateway-worker-client-tls"}
    wenv = {
        e["name"]: e["value"] for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    genv = {
        e["name"]: e["value"] for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert wenv["RUNNERFLEET_TLS_CLIENT_CA"].endswith("/ca.crt")
    assert wenv["RUNNERFLEET_TLS_CERT"].endswith("/tls.crt")
    assert genv["RUNNERFLEET_WORKER_TLS_CA"].endswith("/ca.crt")
    assert genv["RUNNERFLEET_WORKER_TLS_CERT"].endswith("/tls.crt")


def test_k8s_gpu_overlay_requests_gpus() -> None:
    objs = by_kind(render("deploy/k8s/overlays/gpu"))
    gpu = objs[("Deployment", "runnerfleet-worker-gpu")]
    assert gpu["metadata"]["namespace"] == "runnerfleet"
    c = gpu["spec"]["template"]["spec"]["containers"][0]
    assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert c["command"][c["command"].index("--device") + 1] == "cuda:0"
    labels = gpu["spec"]["template"]["metadata"]["labels"]
    headless = objs[("Service", "runnerfleet-worker")]
    assert headless["spec"]["selector"].items() <= labels.items(), "GPU workers join discovery"
    cpu = objs[("Deployment", "runnerfleet-worker")]
    assert gpu["spec"]["selector"] != cpu["spec"]["selector"], "Deployments must not overlap"


def test_k8s_hpa_targets_the_workers() -> None:
    objs = by_kind(render("deploy/k8s/overlays/autoscale"))
    hpa = objs[("HorizontalPodAutoscaler", "runnerfleet-worker")]
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) in objs
    assert hpa["metadata"]["namespace"] == objs[(ref["kind"], ref["name"])]["metadata"]["namespace"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# --------------------------------------------------------------------------- grafana
def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def test_grafana_datasource_provisioning() -> None:
    ds = yaml.safe_load(DATASOURCES.read_text())
    assert ds["apiVersion"] == 1
    (prom,) = ds["datasources"]
    assert prom["type"] == "prometheus"
    assert prom["uid"] == "runnerfleet-prometheus"
    assert prom["url"] == "http://prometheus:9090"  # the compose service
    assert "prometheus" in load_compose()["services"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable(path: pathlib.Path) -> None:
    board = json.loads(path.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"]), "Grafana uids: <= 40 chars"
    assert board["title"] and "id" not in board or board.get("id") is None
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [p["title"] for p in panels(board) if p["type"] != "row"]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    for var in board.get("templating", {}).get("list", []):
        assert var["datasource"] == {"type": "prometheus", "uid": uid}, var["name"]
    for p in panels(board):
        if p["type"] == "row":
            continue
        where = f"{path.name}: {p['title']}"
        assert p.get("description"), f"{where}: no description"
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert p["targets"], f"{where}: no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), f"{where}: duplicate refId"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid, where
            assert t["expr"].strip(), where
        g = p["gridPos"]
        assert g["x"] >= 0, where
        assert g["x"] + g["w"] <= 24, where
        assert g["h"] > 0, where


def test_dashboards_cover_the_issue() -> None:
    text = {p.name: p.read_text() for p in DASHBOARDS}
    cluster, model, worker = (text[f"runnerfleet-{n}.json"] for n in ("cluster", "model", "worker"))
    for metric in ("gateway_requests_total", "gateway_request_duration_seconds_bucket",
                   "gateway_inflight_requests", "gateway_retries_total"):  # fmt: skip
        assert f"runnerfleet_{metric}" in cluster, metric
    worker_metrics = (
        "batch_size_rows", "batch_size_requests", "queue_wait_seconds_bucket",
        "inference_duration_seconds_bucket", "shed_total", "rejected_total",
    )  # fmt: skip
    for metric in worker_metrics:
        assert f"runnerfleet_worker_{metric}" in model, metric
    for metric in ("worker_up", "queue_depth", "model_load_seconds"):
        assert f"runnerfleet_{metric}" in worker or f"runnerfleet_worker_{metric}" in worker
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in cluster


def test_dashboards_match_their_generator() -> None:
    pytest.importorskip("grafana_foundation_sdk")
    res = run(sys.executable, str(DEPLOY / "grafana" / "generate_dashboards.py"), "--check")
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- health check
def test_healthcheck_script_asks_grpc_health() -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    script = IMAGE_FILES["/opt/runnerfleet/healthcheck.py"]
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"

        def check(*args: str) -> subprocess.CompletedProcess[str]:
            return run(sys.executable, str(script), *args, timeout=30)

        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        res = check(target)
        assert res.returncode == 1
        assert "NOT_SERVING" in res.stdout
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        res = check(target)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "SERVING" in res.stdout, res.stdout + res.stderr
    finally:
        server.stop(None)
    res = check(target)  # nothing listens any more
    assert res.returncode == 1
    assert "UNAVAILABLE" in res.stdout
