"""`runnerfleet models ...`: list, get, export, import, delete, keygen, sign and seed-demo.

Every failure ends with a non-zero exit code and a one-line reason on stderr, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

import store
from protos.errors import NotFound, RunnerFleetError
from store.archive import archive_size_bytes, with_signature_required

__all__ = ["models"]

# Archives smaller than this finish too fast for a progress bar to help.
PROGRESS_MIN_BYTES = 16 * 1024 * 1024

_output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
)
_get_output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json", "path", "table"]),
    default="yaml",
    show_default=True,
    help="yaml (as bentoml models get), json, path (the version's folder) or table.",
)


def _yaml(value: Any) -> str:
    import yaml

    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True)).rstrip()


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into `Error: <reason>` and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunnerFleetError as exc:
            raise click.ClickException(exc.message) from None
        except OSError as exc:
            raise click.ClickException(
                f"{exc.strerror or exc}: {exc.filename or ''}".strip()
            ) from None

    return wrapper


@contextmanager
def _progress(total_bytes: int, description: str) -> Iterator[Callable[[int], None]]:
    from tqdm import tqdm

    with tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        desc=description,
        file=sys.stderr,
        disable=total_bytes < PROGRESS_MIN_BYTES,
    ) as bar:
        yield bar.update
        bar.update(max(0, total_bytes - bar.n))  # archive headers are not counted on the way


def _size(model: store.Model) -> int:
    try:
        return archive_size_bytes(model)
    except RunnerFleetError:
        return 0


def _human_bytes(size_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size_bytes < 1024 or unit == "GiB":
            return f"{size_bytes:.0f} {unit}" if unit == "B" else f"{size_bytes:.1f} {unit}"
        size_bytes /= 1024
    raise AssertionError("unreachable")


def _summary(model: store.Model) -> dict[str, Any]:
    return {
        "tag": str(model.tag),
        "module": model.info.module,
        "size_bytes": _size(model),
        "creation_time": model.info.creation_time.isoformat(),
        "labels": model.info.labels,
    }


def _parse_labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


@click.group()
def models() -> None:
    """Manage the local model store ($RUNNERFLEET_HOME, default ~/runnerfleet)."""


@models.command("list")
@click.argument("name", required=False)
@click.option("-l", "--label", "label_pairs", multiple=True, help="KEY=VALUE (repeatable)")
@_output_option
@_one_line_errors
def list_cmd(name: str | None, label_pairs: tuple[str, ...], output: str) -> None:
    """List models, newest first, optionally one NAME and only those carrying every --label."""
    found = store.list(name, _parse_labels(label_pairs) or None)
    found.sort(key=lambda m: m.info.creation_time, reverse=True)  # newest first, as BentoML
    rows = [_summary(m) for m in found]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if output == "yaml":
        click.echo(_yaml(rows))
        return
    header = ("TAG", "MODULE", "SIZE", "CREATED", "LABELS")
    table = [header] + [
        (
            r["tag"],
            r["module"],
            _human_bytes(r["size_bytes"]),
            r["creation_time"][:19].replace("T", " "),
            ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


_require_signature_option = click.option(
    "--require-signature",
    is_flag=True,
    help="Refuse unless the manifest is signed by a --trusted-key (or RUNNERFLEET_TRUSTED_KEYS).",
)
_trusted_key_option = click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="PEM ed25519 public key whose signatures are accepted (repeatable).",
)


def _policy(require_signature: bool, trusted_keys: tuple[str, ...]) -> store.TrustPolicy:
    """The env's policy, plus a required signature when the flags ask for one."""
    policy = store.policy_from_env()
    if require_signature or trusted_keys:
        if not (policy.trusted_keys or trusted_keys):
            raise click.UsageError("--require-signature needs at least one --trusted-key")
        policy = with_signature_required(policy, trusted_keys)
    return policy


@models.command("get")
@click.argument("tag")
@_get_output_option
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every file against the manifest (exit 1 naming the first bad file).",
)
@_require_signature_option
@_trusted_key_option
@_one_line_errors
def get_cmd(
    tag: str, output: str, verify: bool, require_signature: bool, trusted_keys: tuple[str, ...]
) -> None:
    """Show one model's info (TAG: name, name:version, name:latest or a version prefix)."""
    import dataclasses

    model = store.get(tag)
    checks: dict[str, Any] = {}
    if verify or require_signature or trusted_keys:
        policy = _policy(require_signature, trusted_keys)
        policy = dataclasses.replace(policy, verify_integrity=verify or policy.verify_integrity)
        model.checked(policy)
        checks = {"verified": "ok" if policy.verify_integrity else "skipped"}
        if policy.require_signature:
            checks["signature"] = "ok"
    if output == "path":  # after the checks: a path is printed only for a model that passed
        click.echo(model.path)
        return
    info = {
        "tag": str(model.tag),
        "path": model.path,
        "size_bytes": _size(model),
        "manifest_sha256": model.manifest_sha256,
        **checks,
        **model.info.to_dict(),
    }
    if output == "json":
        click.echo(json.dumps(info, indent=2))
        return
    if output == "yaml":
        click.echo(_yaml(info))
        return
    for key, value in info.items():
        text = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"{key + ':':<16}{text}")


@models.command("export")
@click.argument("tag")
@click.argument("path", type=click.Path(dir_okay=True, writable=True), default=".")
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(dir_okay=False),
    help="PEM ed25519 private key: add a signature over the manifest.",
)
@_one_line_errors
def export_cmd(tag: str, path: str, sign_key: str | None) -> None:
    """Write TAG to a single-file .rfmodel archive at PATH (a file or a folder; default: here)."""
    model = store.get(tag)
    with _progress(archive_size_bytes(model), f"export {model.tag}") as update:
        written = store.export_model(model.tag, path, progress=update, sign_key=sign_key)
    click.echo(f"exported {model.tag} to {written}" + (" (signed)" if sign_key else ""))


@models.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing version with different content.")
@_require_signature_option
@_trusted_key_option
@_one_line_errors
def import_cmd(
    path: str, force: bool, require_signature: bool, trusted_keys: tuple[str, ...]
) -> None:
    """Import a .rfmodel archive (every file's sha256 is checked first) or a BentoML .bentomodel."""
    import os

    from runnerfleet.models import import_archive

    policy = _policy(require_signature, trusted_keys)
    size_bytes = os.path.getsize(path) if os.path.isfile(path) else 0
    with _progress(size_bytes, f"import {os.path.basename(path)}") as update:
        result = import_archive(path, force=force, progress=update, policy=policy)
    click.echo(result.message)


@models.command("keygen")
@click.argument("private_path", type=click.Path(dir_okay=False))
@click.option(
    "--public",
    "public_path",
    type=click.Path(dir_okay=False),
    help="Where the public key goes (default: PRIVATE_PATH.pub).",
)
@_one_line_errors
def keygen_cmd(private_path: str, public_path: str | None) -> None:
    """Create an ed25519 signing key (PEM, mode 0600) and its public key."""
    from store.signing import generate_keypair

    public_path = public_path or f"{private_path}.pub"
    kid = generate_keypair(private_path, public_path)
    click.echo(f"key {kid}: private {private_path}, public {public_path}")


@models.command("sign")
@click.argument("tag")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="PEM ed25519 private key.",
)
@_one_line_errors
def sign_cmd(tag: str, key_path: str) -> None:
    """Sign a stored version's manifest (after checking every file against it)."""
    from store.signing import sign_version

    model = store.get(tag)
    kid = sign_version(model, key_path)
    click.echo(f"signed {model.tag} with key {kid}")


@models.command("delete")
@click.argument("tags", nargs=-1, required=True)
@click.option("-y", "--yes", "--assume-yes", "yes", is_flag=True, help="Do not ask to confirm.")
@_one_line_errors
def delete_cmd(tags: tuple[str, ...], yes: bool) -> None:
    """Delete versions (name:version, name:latest) or every version of a name (name).

    TAGS may be several, each also comma-separated (``a:v1,b``), as with bentoml.
    """
    for tag in [t.strip() for group in tags for t in group.split(",") if t.strip()]:
        parsed = store.Tag.from_str(tag)
        targets = (
            [m.tag for m in store.list(parsed.name)]
            if parsed.version is None
            else [store.get(parsed).tag]
        )
        if not targets:
            raise NotFound(f"model {parsed.name!r} not found in store {store.default_root()}")
        shown = ", ".join(str(t) for t in targets)
        if not yes and not click.confirm(f"Delete {shown}?", default=False):
            raise click.ClickException("nothing deleted")
        deleted = store.delete(parsed if parsed.version is None else targets[0])
        click.echo(f"deleted {', '.join(str(t) for t in deleted)}")


@models.command("seed-demo")
@click.option("--heavy", is_flag=True, help="Also save heavy_mlp (64-4096-4096-10, ~68 MB).")
@click.option(
    "--force", is_flag=True, help="Save new versions even of the demo models already stored."
)
@_one_line_errors
def seed_demo_cmd(heavy: bool, force: bool) -> None:
    """Train and save the demo models the store lacks (iris_clf, digits_mlp, echo[, heavy_mlp]).

    Idempotent: a model already stored is kept, so re-running the job changes nothing.
    """
    from runnerfleet.demo_models import seed_demo_report

    for tag, saved in seed_demo_report(heavy=heavy, force=force):
        click.echo(f"saved {tag}" if saved else f"kept {tag} (already stored)")
