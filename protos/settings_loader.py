"""The one settings loader every process uses: flags, then ``RUNNERFLEET_*`` env, then defaults.

One env prefix, one boolean rule, one place that reads ``os.environ`` (:func:`process_environ`,
called once by each process's ``load``); the store root too (``$RUNNERFLEET_HOME``, default
``~/runnerfleet``). grpc-free and below every other package, so the store can use it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from protos.errors import InvalidArgument

__all__ = [
    "ENV_PREFIX",
    "STORE_ROOT_ENV",
    "env_name",
    "load_values",
    "parse_bool",
    "process_environ",
    "store_root",
]

ENV_PREFIX = "RUNNERFLEET_"
STORE_ROOT_ENV = "RUNNERFLEET_HOME"  # the store root keeps its historical name
_ENV_NAMES = {"store_root": STORE_ROOT_ENV}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

Parser = Callable[[Any], Any]


def process_environ() -> Mapping[str, str]:
    """This process's environment: the only read of ``os.environ`` for settings."""
    return os.environ


def env_name(field: str) -> str:
    """``max_batch_size`` -> ``RUNNERFLEET_MAX_BATCH_SIZE`` (``store_root`` -> RUNNERFLEET_HOME)."""
    return _ENV_NAMES.get(field, ENV_PREFIX + field.upper())


def parse_bool(raw: object) -> bool:
    """The one boolean rule: 1/true/yes/on and 0/false/no/off (any case); else InvalidArgument."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidArgument(f"expected a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def store_root(environ: Mapping[str, str] | None = None) -> str:
    """``$RUNNERFLEET_HOME`` (from ``environ``, default this process's), else ``~/runnerfleet``."""
    env = process_environ() if environ is None else environ
    return env.get(STORE_ROOT_ENV) or os.path.join(os.path.expanduser("~"), "runnerfleet")


def _by_type(default: object) -> Parser | None:
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return None


def load_values(
    cls: type,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    parsers: Mapping[str, Parser] | None = None,
) -> dict[str, Any]:
    """Field values for the settings dataclass ``cls``: a flag that is not None, else its env var
    (empty = unset), else left out (the dataclass default applies).

    A string is parsed by ``parsers[field]`` or by the type of the field's default (bool by
    :func:`parse_bool`); a non-string flag (click already typed it) is taken as given, except
    that tuple fields get a list or tuple parsed too (``workers=["a:1"]``).
    """
    parsers = parsers or {}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        raw = flags.get(field.name)
        source = field.name
        if raw is None:
            raw = environ.get(env_name(field.name))
            source = f"{field.name} ({env_name(field.name)}={raw!r})"
            if raw is None or raw == "":
                continue
        parser = parsers.get(field.name) or _by_type(field.default)
        sequence = isinstance(field.default, tuple) and isinstance(raw, list | tuple)
        if parser is not None and (isinstance(raw, str) or sequence):
            try:
                values[field.name] = parser(raw)
            except ValueError as exc:
                raise InvalidArgument(f"{source}: {exc}") from None
        else:
            values[field.name] = raw
    return values
