"""Helpers for tests/deploy: the docker-compose services run as local processes.

`LocalCompose` reads deploy/docker-compose.yml and starts every service that runs the project
image (store-init, worker replicas, gateway; profile-only services such as the GPU worker are
left out, as `docker compose up` leaves them out) with the service's own `command`,
`environment`, `volumes`, `deploy.replicas`, `depends_on` conditions and `healthcheck`. What a
container gets from Docker is given here the nearest local way:

- one loopback address per replica (127.X.0.N), as a container has its own IP, passed as
  RUNNERFLEET_HOST (the settings' env form of --host) so replicas can share the file's ports;
- service names resolve to those addresses: each process runs in its own mount namespace
  (`unshare --mount`) with a hosts file bind-mounted on /etc/hosts, so `--workers-dns
  worker:8001` goes through real name resolution with one record per replica, as Docker's
  DNS gives (without root/unshare the flag is rewritten to the equivalent `--workers` list);
- named volumes are folders under the test's tmp dir (one store folder for every service);
- paths the image adds (/opt/runnerfleet/healthcheck.py) map to their source in deploy/, and
  `runnerfleet`/`python` to this virtualenv;
- the file's ports are kept unless taken on this machine, then remapped to free ones.

Every process is started by LocalCompose and stopped by it, by PID (conftest.compose_cluster).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
VENV_BIN = pathlib.Path(sys.executable).parent
# files the Dockerfile puts into the image -> their source here (checked by test_deploy_static)
IMAGE_FILES = {"/opt/runnerfleet/healthcheck.py": DEPLOY / "healthcheck.py"}
CONTAINER_LOOPBACK = ("127.0.0.1", "localhost")


def need_tool(name: str, *candidates: pathlib.Path) -> str:
    """Path of a tool; skip when missing locally, fail on CI (where deploy/test-deps.sh ran)."""
    for cand in candidates:
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    msg = f"{name} not installed: run `bash deploy/test-deps.sh`"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


try:  # resolved here, not in the forked child
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if pytest dies without running its teardown."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def need_module(name: str) -> Any:
    """Import a PyPI test tool; skip when missing locally, fail on CI."""
    try:
        return __import__(name)
    except ImportError:
        msg = f"python package {name} not installed: run `bash deploy/test-deps.sh`"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def is_project_service(svc: dict[str, Any]) -> bool:
    image = str(svc.get("image", ""))
    return "build" in svc or image.split(":")[0] in ("runnerfleet", "runnerfleet-cuda")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"],
        capture_output=True, timeout=10,
    )  # fmt: skip
    return probe.returncode == 0


@dataclass
class Replica:
    service: str
    index: int  # 1-based, as compose names containers
    ip: str
    argv: list[str]
    env: dict[str, str]
    log: pathlib.Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass
class LocalCompose:
    tmp: pathlib.Path
    compose: dict[str, Any] = field(default_factory=load_compose)
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    port_map: dict[int, int] = field(default_factory=dict)
    volumes: dict[str, pathlib.Path] = field(default_factory=dict)
    use_unshare: bool = False

    def __post_init__(self) -> None:
        self.services = {
            name: svc
            for name, svc in self.compose["services"].items()
            if is_project_service(svc) and not svc.get("profiles")
        }
        self.use_unshare = _can_unshare()
        net = 40 + os.getpid() % 200
        next_host = 2
        self.ips: dict[str, list[str]] = {}
        for name, svc in self.services.items():
            count = int((svc.get("deploy") or {}).get("replicas", 1))
            self.ips[name] = []
            for _ in range(count):
                self.ips[name].append(f"127.{net}.0.{next_host}")
                next_host += 1
        for vol in self.compose.get("volumes") or {}:
            self.volumes[vol] = self.tmp / "volumes" / vol
            self.volumes[vol].mkdir(parents=True, exist_ok=True)
        (self.tmp / "logs").mkdir(exist_ok=True)
        self._choose_ports()
        self.hosts_file = self.tmp / "hosts"
        lines = [pathlib.Path("/etc/hosts").read_text().rstrip("\n"), "# tests/deploy"]
        for name, ips in self.ips.items():
            for i, ip in enumerate(ips, start=1):
                lines.append(f"{ip} {name} {name}-{i}")
        self.hosts_file.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ translation
    def _file_ports(self) -> set[int]:
        ports: set[int] = set()
        for svc in self.services.values():
            for spec in svc.get("ports") or []:
                ports.add(int(str(spec).split(":")[-1].split("/")[0]))
            for arg in _as_list(svc.get("command")):
                if arg.isdigit() and 1000 < int(arg) < 65536:
                    ports.add(int(arg))
        return ports

    def _choose_ports(self) -> None:
        ports = self._file_ports()
        all_ips = [ip for ips in self.ips.values() for ip in ips]
        for port in sorted(ports):
            if all(_port_free(ip, port) for ip in all_ips):
                self.port_map[port] = port
            else:  # taken on this machine (e.g. a wildcard bind): remap for every replica
                self.port_map[port] = free_port("0.0.0.0")

    def mapped(self, port: int) -> int:
        return self.port_map.get(port, port)

    def _container_paths(self, svc: dict[str, Any]) -> dict[str, pathlib.Path]:
        paths: dict[str, pathlib.Path] = dict(IMAGE_FILES.items())
        for spec in svc.get("volumes") or []:
            parts = str(spec).split(":")
            source, target = parts[0], parts[1]
            if source in self.volumes:
                paths[target] = self.volumes[source]
            else:
                paths[target] = (COMPOSE_FILE.parent / source).resolve()
        return paths

    def translate(self, value: str, svc: dict[str, Any], ip: str) -> str:
        for cpath, local in sorted(self._container_paths(svc).items(), key=lambda kv: -len(kv[0])):
            if value == cpath or value.startswith(cpath + "/"):
                value = str(local) + value[len(cpath) :]
        if value.isdigit() and int(value) in self.port_map:
            return str(self.mapped(int(value)))
        host, sep, port = value.rpartition(":")
        if sep and port.isdigit():
            if host in CONTAINER_LOOPBACK:
                host = ip
            if int(port) in self.port_map:
                port = str(self.mapped(int(port)))
            value = f"{host}:{port}"
        return value

    def program(self, argv: list[str]) -> list[str]:
        head = {"runnerfleet": str(VENV_BIN / "runnerfleet"), "python": sys.executable,
                "python3": sys.executable}.get(argv[0], argv[0])  # fmt: skip
        return [head, *argv[1:]]

    def service_argv(self, name: str, ip: str) -> list[str]:
        svc = self.services[name]
        argv = self.program([self.translate(a, svc, ip) for a in _as_list(svc["command"])])
        if not self.use_unshare and "--workers-dns" in argv:
            i = argv.index("--workers-dns")
            host, _, port = argv[i + 1].rpartition(":")
            argv[i : i + 2] = ["--workers", ",".join(f"{x}:{port}" for x in self.ips[host])]
        return argv

    def service_env(self, name: str, ip: str) -> dict[str, str]:
        svc = self.services[name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNERFLEET_")}
        raw = svc.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) for item in raw)
        for key, value in raw.items():
            env[key] = self.translate(str(value), svc, ip)
        env["RUNNERFLEET_HOST"] = ip  # the container's own address
        env["PYTHONUNBUFFERED"] = "1"
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def healthcheck_argv(self, name: str, ip: str) -> list[str] | None:
        hc = self.services[name].get("healthcheck") or {}
        test = hc.get("test")
        if hc.get("disable") or not test:
            return None
        if isinstance(test, str):
            return ["sh", "-c", test]
        kind, *cmd = test
        if kind == "CMD-SHELL":
            return ["sh", "-c", " ".join(cmd)]
        assert kind == "CMD", test
        return self.program([self.translate(a, self.services[name], ip) for a in cmd])

    # ------------------------------------------------------------------ lifecycle
    def order(self) -> list[str]:
        done: list[str] = []

        def visit(name: str, stack: tuple[str, ...] = ()) -> None:
            assert name not in stack, f"depends_on cycle: {stack + (name,)}"
            if name in done:
                return
            for dep in _depends(self.services[name]):
                if dep in self.services:
                    visit(dep, stack + (name,))
            done.append(name)

        for name in self.services:
            visit(name)
        return done

    def _spawn(self, name: str, index: int) -> Replica:
        ip = self.ips[name][index - 1]
        argv = self.service_argv(name, ip)
        env = self.service_env(name, ip)
        rep = Replica(name, index, ip, argv, env, self.tmp / "logs" / f"{name}-{index}.log")
        full = argv
        if self.use_unshare:
            script = 'mount --bind "$0" /etc/hosts && exec "$@"'
            full = ["unshare", "--mount", "sh", "-c", script, str(self.hosts_file), *argv]
        with open(rep.log, "ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            rep.proc = subprocess.Popen(
                full, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.tmp, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        return rep

    def healthy(self, rep: Replica) -> bool:
        argv = self.healthcheck_argv(rep.service, rep.ip)
        if argv is None:
            return rep.proc is not None and rep.proc.poll() is None
        res = subprocess.run(argv, capture_output=True, timeout=15, env=rep.env)
        return res.returncode == 0

    def wait_healthy(self, rep: Replica, timeout_s: float = 150.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert rep.proc is not None
            if rep.proc.poll() is not None:
                raise AssertionError(
                    f"{rep.name} exited with {rep.proc.returncode}:\n{rep.log_tail()}"
                )
            if self.healthy(rep):
                return
            time.sleep(0.5)
        raise AssertionError(f"{rep.name} not healthy after {timeout_s}s:\n{rep.log_tail()}")

    def wait_completed(self, rep: Replica, timeout_s: float = 240.0) -> None:
        assert rep.proc is not None
        try:
            rc = rep.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{rep.name} still running:\n{rep.log_tail()}") from exc
        assert rc == 0, f"{rep.name} exited with {rc}:\n{rep.log_tail()}"

    def up(self) -> None:
        for name in self.order():
            svc = self.services[name]
            for dep, cond in _depends(svc).items():
                for rep in self.replicas.get(dep, []):
                    if cond == "service_completed_successfully":
                        self.wait_completed(rep)
                    elif cond == "service_healthy":
                        self.wait_healthy(rep)
            self.replicas[name] = [self._spawn(name, i) for i in range(1, len(self.ips[name]) + 1)]
        for name, reps in self.replicas.items():  # the last ones nobody depended on
            for rep in reps:
                if _is_one_shot(self.services[name]):
                    self.wait_completed(rep)
                else:
                    self.wait_healthy(rep)

    def stop(self, rep: Replica, timeout_s: float = 20.0) -> int | None:
        proc = rep.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=10)

    def restart(self, rep: Replica, wait: bool = True) -> Replica:
        self.stop(rep)
        new = self._spawn(rep.service, rep.index)
        self.replicas[rep.service][rep.index - 1] = new
        if wait:
            self.wait_healthy(new)
        return new

    def ensure_healthy(self) -> None:
        """Wait for every long-running replica (one restarted without waiting, say)."""
        for name, reps in self.replicas.items():
            if not _is_one_shot(self.services[name]):
                for rep in reps:
                    self.wait_healthy(rep)

    def down(self) -> None:
        for name in reversed(self.order()):
            for rep in self.replicas.get(name, []):
                self.stop(rep)

    # ------------------------------------------------------------------ addresses
    def grpc_address(self, service: str, index: int = 1, port: int = 8001) -> str:
        return f"{self.ips[service][index - 1]}:{self.mapped(port)}"

    def metrics_url(self, service: str, index: int = 1, port: int = 8002) -> str:
        return f"http://{self.ips[service][index - 1]}:{self.mapped(port)}/metrics"


def _as_list(command: Any) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(c) for c in command]


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {d: (spec or {}).get("condition", "service_started") for d, spec in deps.items()}


def _is_one_shot(svc: dict[str, Any]) -> bool:
    return str(svc.get("restart", "no")) == "no"
