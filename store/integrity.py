"""Integrity (and, when required, authenticity) of a stored version, checked before loading.

A load unpickles: it runs whatever the files say. So before any byte is unpickled every file is
hashed against the manifest (streaming, one chunk in memory at a time), the file set must be
exactly the manifest's (an extra ``model.torchscript`` would change what loads), and, under a
policy that requires it, the manifest must carry an ed25519 signature by a trusted key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from protos.errors import FailedPrecondition, InvalidArgument
from store.manifest import read_manifest, sha256_file
from store.model import MANIFEST_FILE, SIGNATURE_FILE
from store.policy import TrustPolicy
from store.signing import SignatureError, load_public_keys, verify_signature

if TYPE_CHECKING:
    from store.model import Model

__all__ = ["IntegrityError", "SignatureError", "verify_files", "check_model", "manifest_sha256"]


class IntegrityError(FailedPrecondition):
    """A stored file does not match its manifest: swapped, corrupted, missing or extra."""


def manifest_sha256(directory: str) -> str:
    """sha256 of the manifest's exact bytes: names the whole version's content."""
    with open(os.path.join(directory, MANIFEST_FILE), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _present_files(directory: str) -> set[str]:
    present: set[str] = set()
    for root, _dirs, names in os.walk(directory):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/")
            present.add(rel)
    return present - {MANIFEST_FILE, SIGNATURE_FILE}


def _manifest(directory: str, what: str) -> dict[str, Any]:
    """The version's manifest; a missing or malformed one is an IntegrityError too."""
    try:
        return read_manifest(directory)
    except InvalidArgument as exc:
        raise IntegrityError(f"{what}: {exc.message}") from None


def verify_files(directory: str, what: str) -> None:
    """Hash every file of the version at ``directory``; IntegrityError naming the first bad one."""
    manifest = _manifest(directory, what)
    expected = manifest["files"]
    present = _present_files(directory)
    missing = sorted(set(expected) - present)
    if missing:
        raise IntegrityError(f"{what}: file {missing[0]} listed in the manifest is missing")
    extra = sorted(present - set(expected))
    if extra:
        raise IntegrityError(f"{what}: file {extra[0]} is not in the manifest; refusing to load")
    for rel in sorted(expected):
        path = os.path.join(directory, rel)
        if os.path.islink(path) or not os.path.isfile(path):
            raise IntegrityError(f"{what}: {rel} is not a regular file")
        if sha256_file(path) != expected[rel]["sha256"]:
            raise IntegrityError(
                f"{what}: file {rel} does not match its manifest sha256 (swapped or corrupted)"
            )


def check_signature(directory: str, policy: TrustPolicy, what: str) -> str:
    """The trusted key id that signed the version at ``directory`` (SignatureError if none)."""
    _manifest(directory, what)
    with open(os.path.join(directory, MANIFEST_FILE), "rb") as f:
        manifest_bytes = f.read()
    try:
        with open(os.path.join(directory, SIGNATURE_FILE), "rb") as f:
            sig_bytes: bytes | None = f.read()
    except FileNotFoundError:
        sig_bytes = None
    try:
        return verify_signature(manifest_bytes, sig_bytes, load_public_keys(policy.trusted_keys))
    except SignatureError as exc:
        raise SignatureError(f"{what}: {exc.message}") from None


def check_model(model: Model, policy: TrustPolicy) -> Model:
    """``model`` marked verified, after the checks ``policy`` asks for (else the error)."""
    what = f"model {model.tag}"
    if policy.require_signature:
        check_signature(model.path, policy, what)
    if policy.verify_integrity:
        verify_files(model.path, what)
    return replace(model, verified=True)
