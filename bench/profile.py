"""Where the time goes: py-spy on RunnerFleet's processes while the load generator runs.

Opt-in (`python -m bench.harness --quick --profile cluster1:iris_clf:64`): after a system's
measurement of that model, the harness runs one more load window at that concurrency while
`py-spy record --nonblocking` samples every process of the system (gateway, workers, or the bare
server), then digests the collapsed stacks into: samples per process, the share of CPU samples
per bucket (RunnerFleet package, grpc, protobuf, numpy, torch, sklearn, asyncio, ...) by the
innermost frame, and the hottest RunnerFleet functions (inclusive). The raw stacks stay in the
run folder for flame graphs.

py-spy installs once into its own venv under `.cache/bench-tools` (never the project's venv).
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".cache" / "bench-tools"
PROJECT_PACKAGES = ("runner_worker", "api_gateway", "protos", "store", "runnerfleet", "bench")

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def ensure_py_spy(log: pathlib.Path) -> pathlib.Path:
    exe = TOOLS / "venv" / "bin" / "py-spy"
    if exe.exists():
        return exe
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        base = pathlib.Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run(
            [str(base), "-m", "venv", str(TOOLS / "venv")],
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=True,
        )
        subprocess.run(
            [str(TOOLS / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"],
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=True,
        )
    return exe


def start_record(
    exe: pathlib.Path, pid: int, seconds: float, out: pathlib.Path, log: pathlib.Path
) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    f = open(log, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [
                str(exe),
                "record",
                "-p",
                str(pid),
                "-d",
                str(max(1, round(seconds))),
                "-r",
                "200",
                "-f",
                "raw",
                "--nonblocking",
                "-o",
                str(out),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        f.close()


def _bucket(file: str) -> str:
    f = file.replace("\\", "/")
    for pkg in PROJECT_PACKAGES:
        if f.startswith(pkg + "/") or f"/{pkg}/" in f and "site-packages" not in f:
            return pkg
    for key, name in (
        ("grpc", "grpc"),
        ("google/protobuf", "protobuf"),
        ("numpy", "numpy"),
        ("torch", "torch"),
        ("sklearn", "sklearn"),
        ("scipy", "scipy"),
        ("asyncio", "asyncio"),
        ("prometheus_client", "prometheus_client"),
        ("concurrent/futures", "threads"),
        ("threading", "threads"),
        ("selectors", "asyncio"),
        ("tritonclient", "tritonclient"),
    ):
        if key in f:
            return name
    return "other (stdlib, C)"


def digest(raw: pathlib.Path, top: int = 12) -> dict:
    """Buckets by innermost frame, and the hottest project functions (inclusive)."""
    total = 0
    buckets: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = []
        for fr in stack.split(";"):
            m = _FRAME.match(fr.strip())
            if m:
                frames.append((m.group("func"), m.group("file")))
        if not frames:
            continue
        total += n
        func, file = frames[-1]
        buckets[_bucket(file)] += n
        leaf[f"{func} ({file})"] += n
        seen = set()
        for func, file in frames:
            if _bucket(file) in PROJECT_PACKAGES:
                key = f"{func} ({file})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += n
    pct = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "buckets_pct": {k: pct(v) for k, v in buckets.most_common()},
        "top_self_pct": {k: pct(v) for k, v in leaf.most_common(top)},
        "top_project_inclusive_pct": {k: pct(v) for k, v in inclusive.most_common(top)},
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.profile RAW...`: print the digest of saved collapsed stacks."""
    for path in argv if argv is not None else sys.argv[1:]:
        print(path)
        print(json.dumps(digest(pathlib.Path(path)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
