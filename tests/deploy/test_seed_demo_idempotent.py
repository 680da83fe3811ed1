"""`runnerfleet models seed-demo` is idempotent: the compose store-init service runs it again on
every `docker compose up --scale ...` (and a Kubernetes Job may be retried), and that must never
change which version of a demo model `latest` names."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest
from deploy_support import REPO, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def cli(home: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNNERFLEET_HOME": str(home), "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [str(VENV_BIN / "runnerfleet"), "models", *args],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res


def snapshot(home: pathlib.Path) -> dict[str, tuple[int, int]]:
    """Every file under the store with its size and modification time (ns)."""
    return {
        str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def tags(home: pathlib.Path) -> list[str]:
    listed = json.loads(cli(home, "list", "-o", "json").stdout)
    return sorted(m["tag"] for m in listed)


def test_seed_demo_twice_changes_nothing(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "store"
    first = cli(home, "seed-demo")
    assert first.stdout.count("saved ") == 3, first.stdout
    before_tags, before_files = tags(home), snapshot(home)
    assert {t.split(":")[0] for t in before_tags} == {"iris_clf", "digits_mlp", "echo"}

    again = cli(home, "seed-demo")
    assert "saved " not in again.stdout, again.stdout
    assert again.stdout.count("kept ") == 3, again.stdout
    assert tags(home) == before_tags
    assert snapshot(home) == before_files, "a second seed-demo wrote to the store"

    # --force is the one way to save new versions; a missing model alone is saved again
    cli(home, "delete", "--yes", "echo")
    partial = cli(home, "seed-demo")
    assert partial.stdout.count("kept ") == 2, partial.stdout
    assert "saved echo:" in partial.stdout, partial.stdout
    forced = cli(home, "seed-demo", "--force")
    assert forced.stdout.count("saved ") == 3, forced.stdout
    assert len(tags(home)) == 6
