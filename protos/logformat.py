"""Process logging: plain text or one JSON object per line, with the request's ids on each line.

``request_scope(request_id, trace_id)`` binds the ids to the current task (a contextvar), so
every line logged while a request is handled, at any depth, carries ``request_id`` and
``trace_id`` without passing them around. It is entered for every request, so it is cheap: a
plain context manager (no generator), and a request that came without an id gets one only
when a line about it is written (the same one for every line of that scope). Entering one
scope object again (the request's last line) keeps its ids. ``configure_logging`` is called
once by each CLI command (``--log-format text|json``); ``protos.runtime_settings`` changes the
format and the severities written while the process runs (Triton's logging extension).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import os
from typing import Any

__all__ = [
    "JsonFormatter",
    "LOG_FORMATS",
    "configure_logging",
    "format_of",
    "formatter_for",
    "new_request_id",
    "request_ids",
    "request_scope",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def new_request_id() -> str:
    """A fresh id for a request that came without one."""
    return os.urandom(8).hex()


class _Ids:
    """A request's ids; the request id is made on first use when the request had none."""

    __slots__ = ("_request_id", "trace_id")

    def __init__(self, request_id: str, trace_id: str | None) -> None:
        self._request_id = request_id
        self.trace_id = trace_id

    @property
    def request_id(self) -> str:
        if not self._request_id:
            self._request_id = new_request_id()
        return self._request_id


_REQUEST: contextvars.ContextVar[_Ids | None] = contextvars.ContextVar(
    "runnerfleet_request", default=None
)


class request_scope:  # noqa: N801 - used as `with request_scope(...)`, like a function
    """Lines logged inside carry ``request_id`` (made on first use when "") and ``trace_id``."""

    __slots__ = ("_ids", "_token")

    def __init__(self, request_id: str, trace_id: str | None) -> None:
        self._ids = _Ids(request_id, trace_id)
        self._token: contextvars.Token[_Ids | None] | None = None

    def __enter__(self) -> None:
        self._token = _REQUEST.set(self._ids)

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            _REQUEST.reset(self._token)
            self._token = None


def request_ids() -> tuple[str, str | None] | None:
    """The (request id, trace id) bound to the current task, if any."""
    ids = _REQUEST.get()
    return None if ids is None else (ids.request_id, ids.trace_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, trace_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, object] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _REQUEST.get()
        if ids is not None:
            line["request_id"] = ids.request_id
            if ids.trace_id:
                line["trace_id"] = ids.trace_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    """The plain format, with ``request_id=... trace_id=...`` appended inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _REQUEST.get()
        if ids is None:
            return text
        tail = f" request_id={ids.request_id}" + (
            f" trace_id={ids.trace_id}" if ids.trace_id else ""
        )
        return text + tail


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of one of ``LOG_FORMATS``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else _TextFormatter(TEXT_FORMAT)


def format_of(formatter: logging.Formatter | None) -> str:
    """Which of ``LOG_FORMATS`` a handler's formatter writes."""
    return "json" if isinstance(formatter, JsonFormatter) else "text"


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Set up the root logger once for the process (stderr)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
