"""Export formats and compressed archives around the store's one archive format (``.rfmodel``).

The store writes and verifies uncompressed tar archives. BentoML's ``export_model`` also takes
``output_format`` (a compressed archive or a folder) and appends its extension to a bare path;
this module converts between those and the store's format, so verification stays in one place.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from protos.errors import InvalidArgument

__all__ = ["OUTPUT_FORMATS", "export_as", "plain_archive"]

SUFFIX = ".rfmodel"
_COMPRESSORS: dict[str, tuple[str, Callable[..., Any]]] = {
    "gz": (".gz", gzip.open),
    "xz": (".xz", lzma.open),
    "bz2": (".bz2", bz2.open),
}
OUTPUT_FORMATS = ("rfmodel", "tar", "gz", "xz", "bz2", "folder")
_MAGIC: dict[bytes, Callable[..., Any]] = {
    b"\x1f\x8b": gzip.open,
    b"\xfd7zXZ": lzma.open,
    b"BZh": bz2.open,
}


def _target(path: str, output_format: str) -> str:
    if os.path.isdir(path) or output_format == "folder":
        return path
    if not os.path.splitext(path)[1]:
        path += SUFFIX  # a bare path gets the extension, as BentoML appends .bentomodel
    if output_format in _COMPRESSORS and not path.endswith(_COMPRESSORS[output_format][0]):
        path += _COMPRESSORS[output_format][0]
    return path


def export_as(
    export: Callable[[str], str], path: str, output_format: str | None, default_name: str
) -> str:
    """Run ``export(archive_path)`` and convert its archive to ``output_format`` at ``path``."""
    fmt = (output_format or "rfmodel").lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise InvalidArgument(f"output_format must be one of {list(OUTPUT_FORMATS)}, got {fmt!r}")
    target = _target(path, fmt)
    if fmt in ("rfmodel", "tar"):
        return export(target)
    if os.path.isdir(target) and fmt != "folder":
        target = os.path.join(target, default_name + SUFFIX + _COMPRESSORS[fmt][0])
    with tempfile.TemporaryDirectory(prefix="rf-export-") as tmp:
        archive = export(os.path.join(tmp, default_name + SUFFIX))
        if fmt == "folder":
            if os.path.exists(target) and os.listdir(target):
                raise InvalidArgument(f"export folder {target} exists and is not empty")
            with tarfile.open(archive, "r:") as tar:
                tar.extractall(target, filter="data")
            return target
        opener = _COMPRESSORS[fmt][1]
        partial = f"{target}.{os.getpid()}.partial"
        with open(archive, "rb") as src, opener(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, target)
        return target


@contextlib.contextmanager
def plain_archive(path: str) -> Iterator[str]:
    """``path`` itself if it is an uncompressed archive, else a decompressed temporary copy."""
    if not os.path.isfile(path):
        yield path  # the store says what is wrong with it
        return
    with open(path, "rb") as f:
        head = f.read(6)
    opener = next((o for magic, o in _MAGIC.items() if head.startswith(magic)), None)
    if opener is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rf-import-") as tmp:
        plain = os.path.join(tmp, "archive" + SUFFIX)
        with opener(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield plain
