"""`runnerfleet certs`: a development CA, server and client certificates, and cluster tokens.

For development and tests; production takes certificates from its own CA (cert-manager in
Kubernetes). Layout, one folder per identity with cert-manager's file names, so each folder
is one Kubernetes TLS Secret (`kubectl create secret generic NAME --from-file=DIR/server`):

    ca/ca.crt ca/ca.key                  the CA (keep ca.key off the cluster)
    server/tls.crt tls.key ca.crt        serverAuth (and clientAuth, so a pod's health probe
                                         can present it to its own mTLS port; its CN
                                         runnerfleet-server has no scope); SANs localhost,
                                         127.0.0.1, ::1 and the compose / Kubernetes
                                         service names (+ --san)
    gateway/ client/ admin/              clientAuth; CN runnerfleet-gateway (the gateway's
                                         identity to workers: inference + control),
                                         runnerfleet-client (inference), runnerfleet-admin
                                         (control), the identities the settings grant by default
    tokens/inference.token control.token  random bearer tokens, one per scope (--tokens)

Keys are ECDSA P-256, written 0600. An existing folder is refused unless --force, or
kept as it is with --if-missing (the compose job re-runs on every `up`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pathlib
import secrets
from typing import Any

import click

__all__ = ["certs", "make_certs", "SERVER_NAMES", "CLIENT_IDENTITIES"]

SERVER_NAMES = (
    "localhost",
    "127.0.0.1",
    "::1",
    "worker",
    "gateway",
    "runnerfleet-worker",
    "runnerfleet-gateway",
    "runnerfleet-worker.runnerfleet.svc",
    "runnerfleet-gateway.runnerfleet.svc",
    "runnerfleet-worker.runnerfleet.svc.cluster.local",
    "runnerfleet-gateway.runnerfleet.svc.cluster.local",
)
CLIENT_IDENTITIES = {
    "gateway": "runnerfleet-gateway",
    "client": "runnerfleet-client",
    "admin": "runnerfleet-admin",
}
TOKEN_FILES = ("inference.token", "control.token")


def make_certs(
    out: pathlib.Path,
    *,
    extra_names: tuple[str, ...] = (),
    days: int = 30,
    tokens: bool = True,
    force: bool = False,
) -> pathlib.Path:
    """Write the CA, certificates (and tokens) under `out`; returns `out`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if (out / "ca" / "ca.crt").exists() and not force:
        raise click.ClickException(f"{out} already holds certificates (use --force to replace)")
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RunnerFleet development"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(path: pathlib.Path, data: bytes, secret: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("RunnerFleet development CA"))
        .issuer_name(name("RunnerFleet development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    write(out / "ca" / "ca.crt", ca_pem)
    write(out / "ca" / "ca.key", key_pem(ca_key), secret=True)

    def issue(
        folder: str, common: str, usages: list[x509.ObjectIdentifier], sans: list[str]
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in sans]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        write(out / folder / "tls.crt", cert.public_bytes(serialization.Encoding.PEM))
        write(out / folder / "tls.key", key_pem(key), secret=True)
        write(out / folder / "ca.crt", ca_pem)

    server_names = list(dict.fromkeys([*SERVER_NAMES, *extra_names]))
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    issue("server", "runnerfleet-server", both, server_names)
    for folder, common in CLIENT_IDENTITIES.items():
        issue(folder, common, [ExtendedKeyUsageOID.CLIENT_AUTH], [])
    if tokens:
        for file_name in TOKEN_FILES:
            write(out / "tokens" / file_name, secrets.token_urlsafe(32).encode(), secret=True)
    return out


def _general_name(value: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


@click.command("certs")
@click.option(
    "--out", "out", default="certs", show_default=True, type=click.Path(file_okay=False),
    help="Folder to write into.",
)  # fmt: skip
@click.option("--san", "sans", multiple=True, help="Extra server name or IP (repeatable).")
@click.option("--days", type=int, default=30, show_default=True, help="Validity in days.")
@click.option("--no-tokens", is_flag=True, help="Do not write tokens/*.token.")
@click.option("--force", is_flag=True, help="Replace certificates already in --out.")
@click.option("--if-missing", is_flag=True, help="Exit 0, changing nothing, if --out has a CA.")
def certs(
    out: str, sans: tuple[str, ...], days: int, no_tokens: bool, force: bool, if_missing: bool
) -> None:
    """Create a development CA, server/client certificates and cluster tokens in --out."""
    if days < 1:
        raise click.UsageError("--days must be at least 1")
    if if_missing and (pathlib.Path(out) / "ca" / "ca.crt").exists():
        click.echo(f"{out} already holds a CA: kept as it is")
        return
    folder = make_certs(
        pathlib.Path(out), extra_names=sans, days=days, tokens=not no_tokens, force=force
    )
    click.echo(f"wrote a development CA, certificates and tokens to {folder}")
