"""Serve this machine's local pip sources over HTTP so `docker build --network host` can use them.

pip's configuration (`pip config list`: find-links, index-url, extra-index-url) may name local
folders (`/some/wheels`, `file:///some/simple`) that a build container cannot see. This serves
each local folder under http://127.0.0.1:PORT/sN/ and writes the build's package sources, as
RUNNERFLEET_PIP_* shell assignments (the names deploy/docker-compose.yml passes to
deploy/Dockerfile), to ENV_FILE; remote URLs pass through unchanged. It then serves until
SIGTERM. Nothing of this machine goes into the repository: the paths come from pip at run time.

Usage: python deploy/ci/pip_sources.py ENV_FILE   (the virtualenv's python, whose pip to ask)
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

__all__ = ["pip_sources", "main"]


def pip_sources() -> dict[str, list[str]]:
    """find-links, index-url and extra-index-url values from `pip config list`."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, list[str]] = {"find-links": [], "index-url": [], "extra-index-url": []}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        if option in found:
            for item in value.strip().strip("'\"").split():
                if item not in found[option]:
                    found[option].append(item)
    return found


def _local_path(url: str) -> pathlib.Path | None:
    if url.startswith("file://"):
        return pathlib.Path(url[len("file://") :])
    if url.startswith("/"):
        return pathlib.Path(url)
    return None


def main(env_file: str) -> None:
    sources = pip_sources()
    root = pathlib.Path(tempfile.mkdtemp(prefix="rf-pip-sources-"))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(_QuietHandler, directory=str(root)),
    )
    host = f"127.0.0.1:{server.server_address[1]}"
    mapped: dict[str, list[str]] = {}
    for option, urls in sources.items():
        for url in urls:
            path = _local_path(url)
            if path is not None:
                if not path.is_dir():
                    continue
                name = f"s{len(list(root.iterdir()))}"
                if option == "find-links":  # a flat folder of files
                    (root / name).symlink_to(path)
                    url = f"http://{host}/{name}/"
                else:  # an index's pages may link upwards (../../files/...): serve its parent
                    (root / name).symlink_to(path.parent)
                    url = f"http://{host}/{name}/{path.name}/"
            mapped.setdefault(option, []).append(url)
    values = {
        "RUNNERFLEET_PIP_INDEX_URL": (mapped.get("index-url") or ["https://pypi.org/simple"])[0],
        "RUNNERFLEET_PIP_EXTRA_INDEX_URL": " ".join(mapped.get("extra-index-url", [])),
        "RUNNERFLEET_PIP_FIND_LINKS": " ".join(mapped.get("find-links", [])),
        "RUNNERFLEET_PIP_TRUSTED_HOST": host,
    }
    tmp = env_file + ".tmp"
    with open(tmp, "w") as f:
        for key, value in values.items():
            f.write(f"export {key}={shlex.quote(value)}\n")
    os.replace(tmp, env_file)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so `finally` runs on kill
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)  # only the symlinks this made


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass


if __name__ == "__main__":
    main(sys.argv[1])
