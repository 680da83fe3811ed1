"""The `runnerfleet` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import importlib

import click

__all__ = ["main", "cli"]

# subcommand name -> "module:attribute" (imported lazily so `runnerfleet models` stays fast)
_SUBCOMMANDS = {
    "models": "runnerfleet.cli.models_cmd:models",
    "worker": "runnerfleet.cli.worker_cmd:worker",
    "gateway": "runnerfleet.cli.gateway_cmd:gateway",
    "cluster": "runnerfleet.cli.cluster_cmd:cluster",
    "certs": "runnerfleet.cli.certs_cmd:certs",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="runnerfleet")
def cli() -> None:
    """RunnerFleet: save models, serve them with workers behind a gateway."""


def main() -> None:
    cli()
