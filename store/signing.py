"""Ed25519 signatures over a version's manifest: who vouches for these exact files.

The manifest names every file with its sha256, so a signature over the manifest's exact bytes
covers the whole version. It lives beside it as ``manifest.sig`` (JSON: key id and signature),
travels in exported archives and is kept on import. Keys are PEM files (PKCS#8 private,
SubjectPublicKeyInfo public), the same files ``openssl genpkey -algorithm ed25519`` writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from protos.errors import FailedPrecondition, InvalidArgument, NotFound
from store.model import MANIFEST_FILE, SIGNATURE_FILE

__all__ = [
    "SignatureError",
    "generate_keypair",
    "load_private_key",
    "load_public_keys",
    "key_id",
    "sign_manifest_bytes",
    "write_signature",
    "verify_signature",
    "sign_version",
]

SIG_FORMAT = "rfsig/1"


class SignatureError(FailedPrecondition):
    """A version or archive lacks a valid signature by a trusted key."""


def _crypto() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_key: Any) -> str:
    """A short stable name for a public key: sha256 of its raw 32 bytes, first 16 hex."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: str, public_path: str) -> str:
    """Write a new ed25519 private key (mode 0600) and its public key; return the key id."""
    from cryptography.hazmat.primitives import serialization

    private = _crypto().Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    with open(public_path, "xb") as f:
        f.write(public_pem)
    return key_id(private.public_key())


def _read_key_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound(f"key file {path} does not exist") from None


def load_private_key(path: str) -> Any:
    """The ed25519 private key in PEM file ``path`` (InvalidArgument if it is not one)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, _crypto().Ed25519PrivateKey):
        raise InvalidArgument(f"{path} is not an ed25519 private key")
    return key


def load_public_keys(paths: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """{key id: public key} for the PEM public keys at ``paths``."""
    from cryptography.hazmat.primitives import serialization

    keys: dict[str, Any] = {}
    for path in paths:
        try:
            key = serialization.load_pem_public_key(_read_key_file(path))
        except ValueError as exc:
            raise InvalidArgument(f"{path} is not a PEM public key: {exc}") from None
        if not isinstance(key, _crypto().Ed25519PublicKey):
            raise InvalidArgument(f"{path} is not an ed25519 public key")
        keys[key_id(key)] = key
    return keys


def sign_manifest_bytes(manifest_bytes: bytes, private_key: Any) -> bytes:
    """The ``manifest.sig`` content for these exact manifest bytes."""
    signature = private_key.sign(manifest_bytes)
    record = {
        "format": SIG_FORMAT,
        "alg": "ed25519",
        "key_id": key_id(private_key.public_key()),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return json.dumps(record, indent=1, sort_keys=True).encode("utf-8")


def write_signature(directory: str, private_key: Any) -> bytes:
    """Sign ``directory``'s manifest and write ``manifest.sig`` there; return its bytes."""
    with open(os.path.join(directory, MANIFEST_FILE), "rb") as f:
        sig = sign_manifest_bytes(f.read(), private_key)
    with open(os.path.join(directory, SIGNATURE_FILE), "wb") as f:
        f.write(sig)
        f.flush()
        os.fsync(f.fileno())
    return sig


def verify_signature(
    manifest_bytes: bytes, sig_bytes: bytes | None, trusted: dict[str, Any]
) -> str:
    """The key id that signed ``manifest_bytes``, or SignatureError saying why not."""
    from cryptography.exceptions import InvalidSignature

    if sig_bytes is None:
        raise SignatureError(
            "unsigned: no manifest.sig, and a signature by a trusted key is required"
        )
    try:
        record = json.loads(sig_bytes)
        if record.get("format") != SIG_FORMAT or record.get("alg") != "ed25519":
            raise ValueError("not an rfsig/1 ed25519 signature")
        signer = str(record["key_id"])
        signature = base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"malformed {SIGNATURE_FILE}: {exc}") from None
    key = trusted.get(signer)
    if key is None:
        raise SignatureError(
            f"signed by key {signer}, which is not trusted (trusted: {sorted(trusted) or 'none'})"
        )
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise SignatureError(
            f"signature by key {signer} does not match the manifest: tampered"
        ) from None
    return signer


def sign_version(model: Any, private_path: str) -> str:
    """Check ``model``'s files, then write its ``manifest.sig`` (atomically); return the key id.

    Signing vouches for content, so the files are verified against the manifest first.
    """
    from store.integrity import verify_files

    key = load_private_key(private_path)
    verify_files(model.path, f"model {model.tag}")
    with open(os.path.join(model.path, MANIFEST_FILE), "rb") as f:
        sig = sign_manifest_bytes(f.read(), key)
    # the temp file sits beside the version folder, never in it (a loader would see it)
    temp = os.path.join(
        os.path.dirname(model.path), f".sig-{os.getpid()}-{key_id(key.public_key())}.tmp"
    )
    with open(temp, "wb") as f:
        f.write(sig)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, os.path.join(model.path, SIGNATURE_FILE))
    return key_id(key.public_key())
