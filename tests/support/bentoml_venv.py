"""A virtual environment with the real BentoML 1.4, for tests that need its archives.

Created on first use under ``.cache/bentoml-venv`` (gitignored), never in the shared ``.venv``.
It sees the running interpreter's packages (torch, scikit-learn, numpy) through a ``.pth``
file, so only BentoML and its own dependencies are downloaded. Returns None when it cannot be
made (offline, no pip): the caller skips with the reason.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import sysconfig
import venv

__all__ = ["ensure_bentoml_venv", "BENTOML_REQUIREMENT"]

BENTOML_REQUIREMENT = "bentoml>=1.4,<1.5"
_READY = "ready"


def _python(root: pathlib.Path) -> pathlib.Path:
    return root / "bin" / "python"


def ensure_bentoml_venv(
    root: pathlib.Path, timeout_s: float = 900.0
) -> tuple[pathlib.Path | None, str]:
    """(python of the venv, "") when BentoML is importable there, else (None, why not)."""
    python = _python(root)
    if (root / _READY).exists() and python.exists():
        return python, ""
    try:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(root)
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        ours = sysconfig.get_paths()["purelib"]
        pathlib.Path(site, "runnerfleet-shared.pth").write_text(ours + "\n")
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             BENTOML_REQUIREMENT],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if done.returncode != 0:
            return None, f"pip install {BENTOML_REQUIREMENT} failed: {done.stderr[-800:]}"
        check = subprocess.run(
            [str(python), "-c", "import bentoml, sklearn, torch; print(bentoml.__version__)"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if check.returncode != 0:
            return None, f"bentoml does not import in {root}: {check.stderr[-800:]}"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot create the BentoML venv at {root}: {exc}"
    (root / _READY).write_text(check.stdout)
    return python, ""


if __name__ == "__main__":  # warm the cache: python -m tests.support.bentoml_venv
    repo = pathlib.Path(__file__).resolve().parents[2]
    print(ensure_bentoml_venv(repo / ".cache" / "bentoml-venv"))
    sys.exit(0)
