"""Triton's logging and trace extensions: read and change a process's settings while it runs.

Transport-neutral: the gRPC servicers (``LogSettings``, ``TraceSetting``) and the HTTP routes
(``/v2/logging``, ``/v2/trace/setting``, ``/v2/models/{m}/trace/setting``) of both processes
convert their messages to plain values and call one ``RuntimeSettings``. Every process answers
for itself (as Triton, one process, does): the gateway's settings are the gateway's; a
worker's are changed at that worker. Errors are ``RunnerFleetError`` (INVALID_ARGUMENT for a
key or value this process does not take, FAILED_PRECONDITION for tracing with no exporter,
UNIMPLEMENTED for per-model trace settings), so both front doors answer them alike.

**Logging** (Triton's keys): ``log_info``, ``log_warning``, ``log_error`` (bool: lines of that
severity are written), ``log_verbose_level`` (int: above 0, DEBUG lines too, such as one line
per request), ``log_format`` (``text`` or ``json``; Triton's ``default`` is ``text``) and
``log_file`` (read-only ``""``: every process logs to stderr for its supervisor, compose or
Kubernetes to collect). A change applies to every handler of the root logger at once.

**Tracing** (Triton's OpenTelemetry mode): ``trace_mode`` (``opentelemetry``, read-only),
``trace_level`` (``OFF`` or ``TIMESTAMPS``: spans carry timestamps, never tensors),
``trace_rate`` (sample one request in N at the edge: the root sampler's ratio is 1/N; callers'
sampled ``traceparent`` decisions are still followed when the process's sampler is
parent-based), ``trace_count`` (how many more traces to sample, ``-1`` without end; it counts
down as traces start, as Triton's does) and ``log_frequency`` (``0``: the exporter batches).
The starting values come from ``OTEL_TRACES_SAMPLER`` and its argument (``protos.tracing``);
a setting given with no value goes back to its starting value. Per-model settings are not
kept: sampling is decided at the request's edge, before the model is read, so a model's
settings are the process's (GET answers them; a change names no model).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from protos import grpc_service_pb2 as pb
from protos.errors import FailedPrecondition, InvalidArgument, Unimplemented, shown
from protos.logformat import LOG_FORMATS, format_of, formatter_for
from protos.status import aborts_on_error
from protos.tracing import Tracing

__all__ = ["LOG_KEYS", "TRACE_KEYS", "RuntimeSettings", "RuntimeSettingsRpcs"]

LogValue = bool | int | str
LOG_KEYS = (
    "log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format",
)  # fmt: skip
TRACE_KEYS = ("trace_mode", "trace_level", "trace_rate", "trace_count", "log_frequency")
_TRACE_LEVELS = ("OFF", "TIMESTAMPS")
_LOG_FORMAT_ALIASES = {"default": "text"}


class _SeverityFilter(logging.Filter):
    """Triton's per-severity switches on the root handlers (Python levels are one threshold)."""

    def __init__(self) -> None:
        super().__init__("runnerfleet-severity")
        self.info = self.warning = self.error = True
        self.verbose = 0

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelno
        if level >= logging.ERROR:
            return self.error
        if level >= logging.WARNING:
            return self.warning
        if level >= logging.INFO:
            return self.info
        return self.verbose > 0


class RuntimeSettings:
    """One process's log and trace settings (``root``: the logger to govern, default root)."""

    def __init__(self, tracing: Tracing, root: logging.Logger | None = None) -> None:
        self._tracing = tracing
        self._root = root if root is not None else logging.getLogger()
        self._filter = _SeverityFilter()
        level = self._root.level
        self._filter.verbose = 1 if level <= logging.DEBUG else 0
        self._filter.info = level <= logging.INFO
        self._filter.warning = level <= logging.WARNING
        self._initial_trace = dict(self.trace_settings())

    # -- logging ----------------------------------------------------------------------

    def log_settings(self) -> dict[str, LogValue]:
        f = self._filter
        handlers = self._root.handlers
        return {
            "log_file": "",
            "log_info": f.info,
            "log_warning": f.warning,
            "log_error": f.error,
            "log_verbose_level": f.verbose,
            "log_format": format_of(handlers[0].formatter) if handlers else "text",
        }

    def update_log_settings(self, changes: Mapping[str, LogValue]) -> dict[str, LogValue]:
        """Apply ``changes`` (all checked first: a bad one changes nothing); the new settings."""
        unknown = sorted(set(changes) - set(LOG_KEYS))
        if unknown:
            raise InvalidArgument(
                f"unknown log setting(s) {_names(unknown)}; this process takes {list(LOG_KEYS)}"
            )
        switches: dict[str, bool] = {}
        for key in ("log_info", "log_warning", "log_error"):
            if key in changes:
                value = changes[key]
                if not isinstance(value, bool):
                    raise InvalidArgument(f"{key} must be a boolean, got {_value(value)}")
                switches[key] = value
        verbose = self._filter.verbose
        if "log_verbose_level" in changes:
            value = changes["log_verbose_level"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(
                    f"log_verbose_level must be an integer >= 0, got {_value(value)}"
                )
            verbose = value
        log_format = None
        if "log_format" in changes:
            value = changes["log_format"]
            name = _LOG_FORMAT_ALIASES.get(str(value), str(value))
            if name not in LOG_FORMATS:
                raise InvalidArgument(
                    f"log_format must be one of {', '.join(LOG_FORMATS)} (or default), "
                    f"got {_value(value)}"
                )
            log_format = name
        if changes.get("log_file", "") != "":
            raise InvalidArgument(
                "log_file cannot be set: every RunnerFleet process logs to stderr, for its "
                "supervisor, docker-compose or Kubernetes to collect"
            )
        f = self._filter
        f.info = switches.get("log_info", f.info)
        f.warning = switches.get("log_warning", f.warning)
        f.error = switches.get("log_error", f.error)
        f.verbose = verbose
        for handler in self._root.handlers:
            if f not in handler.filters:
                handler.addFilter(f)
            if log_format is not None:
                handler.setFormatter(formatter_for(log_format))
        # the logger's threshold lets through the least severe kind switched on
        if f.verbose > 0:
            self._root.setLevel(logging.DEBUG)
        elif f.info:
            self._root.setLevel(logging.INFO)
        elif f.warning:
            self._root.setLevel(logging.WARNING)
        else:
            self._root.setLevel(logging.ERROR)
        return self.log_settings()

    # -- tracing ----------------------------------------------------------------------

    def trace_settings(self, model: str = "") -> dict[str, list[str]]:
        """The process's trace settings (a model's are the same: none are kept per model)."""
        sampling = self._tracing.sampling
        if sampling is None:  # no exporter: nothing is ever traced
            level, rate, count = "OFF", 1, -1
        else:
            level = "TIMESTAMPS" if sampling.on else "OFF"
            rate, count = sampling.rate, sampling.count
        return {
            "trace_mode": ["opentelemetry"],
            "trace_level": [level],
            "trace_rate": [str(rate)],
            "trace_count": [str(count)],
            "log_frequency": ["0"],
        }

    def update_trace_settings(
        self, changes: Mapping[str, Sequence[str] | None], model: str = ""
    ) -> dict[str, list[str]]:
        """Apply ``changes`` (no value: back to the starting one); the new settings."""
        if model:
            raise Unimplemented(
                "per-model trace settings are not kept: RunnerFleet samples a request at its "
                "edge, before it reads the model; change the process's settings (no model name)"
            )
        unknown = sorted(set(changes) - set(TRACE_KEYS))
        if unknown:
            raise InvalidArgument(
                f"unknown trace setting(s) {_names(unknown)}; this process takes "
                f"{list(TRACE_KEYS)} (spans go to the OTLP exporter, not a trace file)"
            )
        wanted = {
            key: _one(key, values) if values else self._initial_trace[key][0]
            for key, values in changes.items()
        }
        if wanted.get("trace_mode", "opentelemetry") != "opentelemetry":
            raise InvalidArgument("trace_mode is opentelemetry (OTLP export), the only one")
        if wanted.get("log_frequency", "0") != "0":
            raise InvalidArgument("log_frequency is 0: spans are batched by the OTLP exporter")
        level = wanted.get("trace_level")
        if level is not None and level not in _TRACE_LEVELS:
            raise InvalidArgument(
                f"trace_level must be one of {', '.join(_TRACE_LEVELS)}, got {shown(level)} "
                "(spans never carry tensors)"
            )
        rate = _integer("trace_rate", wanted.get("trace_rate"), minimum=1)
        count = _integer("trace_count", wanted.get("trace_count"), minimum=-1)
        sampling = self._tracing.sampling
        if sampling is None:  # nothing samples: only "off" and the starting values hold
            if level == "TIMESTAMPS" or rate not in (None, 1) or count not in (None, -1):
                raise FailedPrecondition(
                    "tracing is off in this process: start it with OTEL_TRACES_EXPORTER=otlp "
                    "(and OTEL_EXPORTER_OTLP_ENDPOINT) to have somewhere to send spans"
                )
            return self.trace_settings()
        sampling.update(on=None if level is None else level == "TIMESTAMPS", rate=rate, count=count)
        return self.trace_settings()


def _names(keys: Sequence[str], most: int = 5) -> str:
    """Caller-chosen setting names for a message: a few, each cut (``protos.errors.shown``)."""
    listed = ", ".join(shown(k) for k in keys[:most])
    return f"[{listed}{f', ... ({len(keys)} in all)' if len(keys) > most else ''}]"


def _value(value: object) -> str:
    """A caller-chosen value for a message, cut like a name."""
    return shown(value) if isinstance(value, str) else shown(repr(value))


def _one(key: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise InvalidArgument(f"{key} takes one value, got {len(values)}")
    return str(values[0])


def _integer(key: str, value: str | None, *, minimum: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"{key} must be an integer, got {shown(value)}") from None
    if number < minimum:
        raise InvalidArgument(f"{key} must be >= {minimum}, got {shown(value)}")
    return number


class RuntimeSettingsRpcs:
    """The ``TraceSetting`` and ``LogSettings`` rpcs over a servicer's ``_runtime``."""

    _runtime: RuntimeSettings

    @aborts_on_error
    async def TraceSetting(self, request: Any, context: Any) -> pb.TraceSettingResponse:
        if request.settings:
            changes = {key: list(value.value) for key, value in request.settings.items()}
            now = self._runtime.update_trace_settings(changes, request.model_name)
        else:
            now = self._runtime.trace_settings(request.model_name)
        response = pb.TraceSettingResponse()
        for key, values in now.items():
            response.settings[key].value.extend(values)
        return response

    @aborts_on_error
    async def LogSettings(self, request: Any, context: Any) -> pb.LogSettingsResponse:
        if request.settings:
            changes = {key: _log_value(key, value) for key, value in request.settings.items()}
            now = self._runtime.update_log_settings(changes)
        else:
            now = self._runtime.log_settings()
        response = pb.LogSettingsResponse()
        for key, value in now.items():
            entry = response.settings[key]
            if isinstance(value, bool):
                entry.bool_param = value
            elif isinstance(value, int):
                entry.uint32_param = value
            else:
                entry.string_param = value
        return response


def _log_value(key: str, value: Any) -> LogValue:
    choice = value.WhichOneof("parameter_choice")
    if choice is None:
        raise InvalidArgument(f"log setting {shown(key)} has no value")
    return getattr(value, choice)  # type: ignore[no-any-return]
