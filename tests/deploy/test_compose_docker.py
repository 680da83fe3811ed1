"""The docker-compose cluster for real: the image built from deploy/Dockerfile, the containers
started by `docker compose up`, and steps 1-7 of deploy/README.md checked against them.

Started by `make test-compose` (deploy/ci/test-compose.sh), which provides the engine (DOCKER_HOST),
the image `runnerfleet:latest`, the compose command (RF_COMPOSE_CMD) and files (RF_COMPOSE_FILES,
with the offline override where no registry is reachable). Alone, this module skips: it needs
that script's engine and image. The tests run in file order on one cluster (module fixture) and
end with `down -v`, asserted to leave no container, network or volume of the project behind.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from deploy_support import DEPLOY, REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

COMPOSE_CMD = os.environ.get("RF_COMPOSE_CMD", "")
COMPOSE_FILES = os.environ.get("RF_COMPOSE_FILES", "")
HEALTHCHECK = DEPLOY / "healthcheck.py"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
# Grafana's built-in variables for the compose Prometheus' 5s scrape interval
# ($__rate_interval = max($__interval + scrape, 4 * scrape))
GRAFANA_BUILTINS = {"$__rate_interval": "20s", "$__interval": "5s", "$__range": "120s",
                    "${__rate_interval}": "20s", "${__interval}": "5s"}  # fmt: skip

# every service of the compose file without a profile, less Grafana (no offline image);
# certs-init starts as the workers' and gateways' dependency
SERVICES = ("store-init", "worker", "gateway", "gateway-2", "prometheus")

if not COMPOSE_CMD:
    pytest.skip(
        "needs the engine and image of `make test-compose` (deploy/ci/test-compose.sh)",
        allow_module_level=True,
    )


def sh(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check:
        assert res.returncode == 0, f"{shlex.join(argv)}:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res


@dataclass
class Cluster:
    """One compose project, addressed through the host ports this test chose."""

    project: str
    ports: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
        argv = [*shlex.split(COMPOSE_CMD), "-p", self.project, *shlex.split(COMPOSE_FILES), *args]
        return sh(*argv, timeout=timeout)

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        """Container ids of a service, oldest first (by compose's own labels)."""
        argv = ["docker", "ps", "-q", "--no-trunc",
                "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={service}"]  # fmt: skip
        if all_states:
            argv.append("-a")
        ids = sh(*argv).stdout.split()
        return sorted(ids, key=lambda c: self.inspect(c)["Created"])

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(sh("docker", "inspect", container).stdout)[0]

    def ip(self, container: str) -> str:
        nets = self.inspect(container)["NetworkSettings"]["Networks"]
        return next(iter(nets.values()))["IPAddress"]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return state.get("Health", {}).get("Status", state["Status"])

    def wait(self, what: str, ok: Any, timeout_s: float = 180) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            got = ok()
            if got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)

    def workers_healthy(self, n: int) -> bool:
        ids = self.containers("worker")
        return len(ids) == n and all(self.health(c) == "healthy" for c in ids)

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    @property
    def grpc_2(self) -> str:
        """The second gateway's published gRPC port (service gateway-2)."""
        return f"127.0.0.1:{self.ports['grpc_2']}"

    def gateway_metrics(self) -> str:
        reply = requests.get(f"http://127.0.0.1:{self.ports['metrics']}/metrics", timeout=10)
        reply.raise_for_status()
        return reply.text

    def gateway_pool(self) -> dict[str, float]:
        """runnerfleet_gateway_worker_up by worker address, as the gateway reports it."""
        from test_deploy_compose import sample  # the exposition parser of the process tests

        text = self.gateway_metrics()
        out = {}
        for line in text.splitlines():
            if line.startswith("runnerfleet_gateway_worker_up{"):
                addr = line.split('worker="', 1)[1].split('"', 1)[0]
                out[addr] = sample(text, "runnerfleet_gateway_worker_up", worker=addr)[0]
        return out

    def worker_metrics(self, container: str) -> str:
        """A worker's /metrics, read inside its container (worker ports are not published)."""
        code = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8002/metrics').read().decode())"
        return sh("docker", "exec", container, "python", "-c", code).stdout

    def prom(self, path: str, **params: Any) -> Any:
        reply = requests.get(
            f"http://127.0.0.1:{self.ports['prometheus']}{path}", params=params, timeout=30
        )
        body = reply.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]


def health_status(target: str) -> tuple[int, str]:
    """The image's health check script, run here against a published port."""
    res = subprocess.run(
        [sys.executable, str(HEALTHCHECK), target], capture_output=True, text=True, timeout=30
    )
    return res.returncode, res.stdout.strip()


def project_leftovers(project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    return {
        "containers": sh("docker", "ps", "-aq", "--filter", label).stdout.split(),
        "networks": sh("docker", "network", "ls", "-q", "--filter", label).stdout.split(),
        "volumes": sh("docker", "volume", "ls", "-q", "--filter", label).stdout.split(),
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        project=f"rftest{os.getpid()}",
        ports={
            k: free_port()
            for k in ("grpc", "metrics", "grpc_2", "metrics_2", "prometheus", "grafana")
        },
    )
    # published on loopback only, on ports free here (the compose file's host-side variables)
    published = {
        "RUNNERFLEET_BIND": "127.0.0.1",
        "RUNNERFLEET_GRPC_PORT": str(c.ports["grpc"]),
        "RUNNERFLEET_METRICS_PORT": str(c.ports["metrics"]),
        "RUNNERFLEET_GRPC_PORT_2": str(c.ports["grpc_2"]),
        "RUNNERFLEET_METRICS_PORT_2": str(c.ports["metrics_2"]),
        "RUNNERFLEET_PROMETHEUS_PORT": str(c.ports["prometheus"]),
        "RUNNERFLEET_GRAFANA_PORT": str(c.ports["grafana"]),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in published.items():
            mp.setenv(key, value)
        yield from _up_and_down(c)


def _up_and_down(c: Cluster) -> Iterator[Cluster]:
    try:
        t0 = time.monotonic()
        # Grafana has no offline image; every other service of the file (no profile) starts
        c.compose("up", "-d", "--no-build", *SERVICES)
        c.timings["up_s"] = time.monotonic() - t0
        yield c
    finally:
        c.compose("down", "-v", "--remove-orphans", timeout=180)
        report = "".join(f"{k}: {v:.1f}\n" for k, v in sorted(c.timings.items()))
        print(report)
        if os.environ.get("RF_TIMINGS"):
            with open(os.environ["RF_TIMINGS"], "a") as f:
                f.write(report)


# --------------------------------------------------------------------------- 1. start-up
def test_1_store_init_then_healthy_workers_then_serving_gateway(cluster: Cluster) -> None:
    (init,) = cluster.containers("store-init", all_states=True)
    state = cluster.inspect(init)["State"]
    assert state["Status"] == "exited", state
    assert state["ExitCode"] == 0, state
    logs = sh("docker", "logs", init).stdout
    assert logs.count("saved ") == 3, logs
    # certs-init wrote the dev CA into the `certs` volume as the image's non-root user
    (certs,) = cluster.containers("certs-init", all_states=True)
    certs_state = cluster.inspect(certs)["State"]
    assert certs_state["ExitCode"] == 0, sh("docker", "logs", certs, check=False).stderr
    cluster.wait("2 healthy workers", lambda: cluster.workers_healthy(2))
    (gateway,) = cluster.containers("gateway")
    started = cluster.inspect(gateway)["State"]["StartedAt"]
    cluster.wait("gateway SERVING", lambda: health_status(cluster.grpc)[0] == 0, 120)
    seen = time.time()
    cluster.timings["gateway_start_to_serving_s"] = seen - _parse_docker_time(started)
    rc, out = health_status(cluster.grpc)
    assert rc == 0, out
    assert out.endswith("SERVING"), out
    # the image's own HEALTHCHECK script, inside the container, agrees; and docker marks it healthy
    inside = sh("docker", "exec", gateway, "python", "/opt/runnerfleet/healthcheck.py")
    assert "SERVING" in inside.stdout
    cluster.wait("gateway healthy", lambda: cluster.health(gateway) == "healthy", 60)
    # the second gateway serves the same cluster through its own published port
    (gateway_2,) = cluster.containers("gateway-2")
    cluster.wait("gateway-2 SERVING", lambda: health_status(cluster.grpc_2)[0] == 0, 120)
    cluster.wait("gateway-2 healthy", lambda: cluster.health(gateway_2) == "healthy", 60)
    # the image runs as the non-root user and carries the OCI labels
    info = cluster.inspect(gateway)
    assert info["Config"]["User"] == "runnerfleet"
    labels = info["Config"]["Labels"]
    for key in ("version", "revision", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def _parse_docker_time(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    import datetime

    head, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return base.timestamp() + float("0." + (frac or "0"))


# --------------------------------------------------------------------------- 2. clients
TRITON_SCRIPT = r"""
import sys
import numpy as np
import tritonclient.grpc as triton
from sklearn.datasets import load_digits, load_iris

c = triton.InferenceServerClient(sys.argv[1])
assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris_clf")
x, y = load_iris(return_X_y=True)
inp = triton.InferInput("input__0", list(x.shape), "FP64")
inp.set_data_from_numpy(x.astype(np.float64))
pred = c.infer("iris_clf", [inp]).as_numpy("output__0")
proba = c.infer("iris_clf", [inp], parameters={"method": "predict_proba"}).as_numpy("output__0")
assert pred.shape == (150,) and proba.shape == (150, 3), (pred.shape, proba.shape)
assert np.array_equal(pred, proba.argmax(1)), "predict and predict_proba disagree"
assert np.allclose(proba.sum(1), 1.0)
iris_acc = float((pred == y).mean())
xd, yd = load_digits(return_X_y=True)
right = 0
for i in range(0, 400, 40):  # requests of the size clients send, not the whole set at once
    dinp = triton.InferInput("input__0", [40, 64], "FP32")
    dinp.set_data_from_numpy(xd[i : i + 40].astype(np.float32))
    logits = c.infer("digits_mlp", [dinp]).as_numpy("output__0")
    right += int((logits.argmax(1) == yd[i : i + 40]).sum())
digits_acc = right / 400
print(f"iris {iris_acc:.3f} digits {digits_acc:.3f}")
assert iris_acc > 0.9 and digits_acc > 0.9
"""


def test_2_tritonclient_and_perf_analyzer_through_the_published_port(cluster: Cluster) -> None:
    # tritonclient's protos clash with protos/ in one process: its own interpreter, as tests/compat
    res = sh(sys.executable, "-c", TRITON_SCRIPT, cluster.grpc, timeout=120)
    assert "iris" in res.stdout, res.stdout
    setup = sh(sys.executable, str(REPO / "tests" / "compat" / "perf_analyzer_setup.py"),
               timeout=300, check=False)  # fmt: skip
    binary = pathlib.Path(setup.stdout.splitlines()[0]) if setup.returncode == 0 else None
    if binary is None or not binary.exists():
        pytest.fail(f"perf_analyzer could not be prepared:\n{setup.stderr[-2000:]}")
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent.parent / "lib")}
    for model in ("iris_clf", "digits_mlp"):
        run = subprocess.run(
            [str(binary), "-m", model, "-u", cluster.grpc, "-i", "grpc",
             "--measurement-interval", "1000", "--stability-percentage", "100"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "Throughput" in run.stdout, run.stdout


# --------------------------------------------------------------------------- 3. prometheus
def run_load(cluster: Cluster, seconds: float, threads: int = 8) -> Counter[tuple[str, str]]:
    from deploy_load import Load

    load = Load(cluster.grpc)
    try:
        return load.run(seconds=seconds, threads=threads)
    finally:
        load.close()


def good_failures(codes: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in codes.items() if k[0] == "good" and k[1] != "OK"}


def test_3_prometheus_sees_every_target_and_every_dashboard_query_has_data(
    cluster: Cluster,
) -> None:
    from test_deploy_prometheus import dashboard_variables, finite_points, panel_targets

    workers = {f"{cluster.ip(w)}:8002" for w in cluster.containers("worker")}

    def targets_up() -> bool:
        active = cluster.prom("/api/v1/targets")["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["instance"]) for t in active if t["health"] == "up"}
        gateways = {
            ("runnerfleet-gateway", "gateway:8002"),
            ("runnerfleet-gateway", "gateway-2:8002"),
        }
        return gateways <= up and workers <= {
            inst for job, inst in up if job == "runnerfleet-worker"
        }

    cluster.wait("Prometheus targets up", targets_up, 90)
    start = time.time()
    codes = run_load(cluster, seconds=15)
    assert codes[("good", "OK")] > 50, dict(codes)
    assert not good_failures(codes), dict(codes)
    time.sleep(6)  # one more scrape and rule evaluation
    end = time.time()

    class Prom:  # what dashboard_variables asks of Prometheus
        get = staticmethod(cluster.prom)

    empty = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        values = dashboard_variables(board, Prom(), start, end)  # type: ignore[arg-type]
        for title, target in panel_targets(board):
            expr = target["expr"]
            for name, value in GRAFANA_BUILTINS.items():
                expr = expr.replace(name, value)
            for name in sorted(values, key=len, reverse=True):
                for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
                    expr = expr.replace(form, values[name])
            assert "$" not in expr, f"{title}: unexpanded variable in {expr}"
            result = cluster.prom(
                "/api/v1/query_range", query=expr, start=start, end=end, step="5s"
            )["result"]
            if not finite_points(result):
                empty.append(f"{path.name} {title} [{target['refId']}]: {expr}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


# --------------------------------------------------------------------------- 4. crash
class BackgroundLoad:
    """Load.run in a thread, for a fixed time, while the test disturbs the cluster."""

    def __init__(self, cluster: Cluster, seconds: float, threads: int = 8) -> None:
        self.codes: Counter[tuple[str, str]] = Counter()
        self.thread = threading.Thread(
            target=lambda: self.codes.update(run_load(cluster, seconds, threads)), daemon=True
        )
        self.thread.start()

    def result(self) -> Counter[tuple[str, str]]:
        self.thread.join(timeout=300)
        assert not self.thread.is_alive(), "load did not finish"
        return self.codes


def worker_pid_on_host(cluster: Cluster, container: str) -> int:
    """The worker process' host PID: the only child of the container's init (`init: true`)."""
    init_pid = cluster.inspect(container)["State"]["Pid"]
    children = pathlib.Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    (child,) = children
    cmdline = pathlib.Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
    assert b"worker" in cmdline, cmdline
    return int(child)


def test_4_worker_process_crash_under_load_fails_no_request(cluster: Cluster) -> None:
    victim = cluster.containers("worker")[0]
    restarts = cluster.inspect(victim)["RestartCount"]
    pid = worker_pid_on_host(cluster, victim)
    load = BackgroundLoad(cluster, seconds=12, threads=16)
    time.sleep(4)
    os.kill(pid, signal.SIGKILL)  # a crash; `docker kill` would count as a manual stop
    codes = load.result()
    assert codes[("good", "OK")] > 50, dict(codes)
    assert not good_failures(codes), dict(codes)
    # the restart policy brought the same container back, healthy, and the gateway took it back
    assert cluster.inspect(victim)["RestartCount"] == restarts + 1
    cluster.wait("restarted worker healthy", lambda: cluster.health(victim) == "healthy", 120)
    addr = f"{cluster.ip(victim)}:8001"
    cluster.wait("gateway took it back", lambda: cluster.gateway_pool().get(addr) == 1.0, 60)


# --------------------------------------------------------------------------- 5. scale
def served_tags(cluster: Cluster, container: str) -> list[str]:
    res = sh("docker", "exec", container, "runnerfleet", "models", "list", "-o", "json")
    return sorted(m["tag"] for m in json.loads(res.stdout))


def requests_ok(text: str) -> float:
    from test_deploy_compose import sample

    return sum(sample(text, "runnerfleet_worker_requests_total", code="OK"))


def test_5_scale_to_3_routes_to_the_new_replica(cluster: Cluster) -> None:
    before = cluster.containers("worker")
    tags_before = served_tags(cluster, before[0])
    t0 = time.time()
    cluster.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "worker=3", *SERVICES)
    (new,) = set(cluster.containers("worker")) - set(before)
    # container start to SERVING for a worker: its healthcheck script, polled inside it
    started = _parse_docker_time(cluster.inspect(new)["State"]["StartedAt"])
    cluster.wait(
        "new worker SERVING",
        lambda: (
            sh(
                "docker", "exec", new, "python", "/opt/runnerfleet/healthcheck.py", check=False
            ).returncode
            == 0
        ),  # fmt: skip
        180,
    )
    cluster.timings["worker_start_to_serving_s"] = time.time() - started
    cluster.wait("3 healthy workers", lambda: cluster.workers_healthy(3), 120)
    addr = f"{cluster.ip(new)}:8001"
    cluster.wait("gateway discovered the replica", lambda: cluster.gateway_pool().get(addr) == 1.0)
    cluster.timings["scale_to_routed_s"] = time.time() - t0
    # store-init ran again and changed nothing: every replica serves the same versions
    (init,) = cluster.containers("store-init", all_states=True)
    assert cluster.inspect(init)["State"]["ExitCode"] == 0
    for w in cluster.containers("worker"):
        assert served_tags(cluster, w) == tags_before, w
    served = requests_ok(cluster.worker_metrics(new))
    codes = run_load(cluster, seconds=6)
    assert not good_failures(codes), dict(codes)
    assert requests_ok(cluster.worker_metrics(new)) > served, "no request reached the new replica"


# --------------------------------------------------------------------------- 6. stop drains
def test_6_docker_stop_drains_a_worker(cluster: Cluster) -> None:
    """With 3 replicas: SIGTERM reaches the worker through init, it drains and exits 0."""
    victim = cluster.containers("worker")[0]
    load = BackgroundLoad(cluster, seconds=15, threads=8)
    time.sleep(3)
    sh("docker", "stop", "-t", "30", victim, timeout=60)
    codes = load.result()
    state = cluster.inspect(victim)["State"]
    assert state["ExitCode"] == 0, f"SIGTERM did not end the worker cleanly: {state}"
    assert codes[("good", "OK")] > 30, dict(codes)
    assert not good_failures(codes), dict(codes)
    # a stopped container would be started again by the next `up` (and a running one removed)
    sh("docker", "rm", victim)


def test_6a_scale_back_to_1_under_load_loses_no_request(cluster: Cluster) -> None:
    assert cluster.workers_healthy(2)
    load = BackgroundLoad(cluster, seconds=25, threads=8)
    time.sleep(3)
    t0 = time.monotonic()
    # --no-deps: store-init's re-run was shown in step 5; here the scale-down happens under load
    cluster.compose("up", "-d", "--no-build", "--no-deps", "--no-recreate", "--scale", "worker=1",
                    "worker")  # fmt: skip
    took_s = time.monotonic() - t0
    assert took_s < 20, f"the scale-down took {took_s:.1f} s, past the load's end"
    cluster.timings["scale_down_s"] = took_s
    codes = load.result()
    assert codes[("good", "OK")] > 30, dict(codes)
    assert not good_failures(codes), dict(codes)
    assert len(cluster.containers("worker")) == 1


def test_6b_gateway_not_serving_with_every_worker_stopped(cluster: Cluster) -> None:
    cluster.compose("stop", "worker", timeout=120)
    try:
        for target in (cluster.grpc, cluster.grpc_2):
            cluster.wait(
                f"gateway {target} NOT_SERVING",
                lambda t=target: health_status(t)[1].endswith("NOT_SERVING"),
                15,
            )
    finally:
        cluster.compose("start", "worker", timeout=120)


# --------------------------------------------------------------------------- 7. down
def test_7_down_v_leaves_nothing_behind(cluster: Cluster) -> None:
    assert any(project_leftovers(cluster.project).values())
    cluster.compose("down", "-v", "--remove-orphans", timeout=180)
    assert project_leftovers(cluster.project) == {"containers": [], "networks": [], "volumes": []}
