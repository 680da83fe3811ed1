"""Process logging: plain text or one JSON object per line, with the request's ids on each line.

``request_scope(request_id, trace_id)`` binds the ids to the current task (a contextvar), so
every line logged while a request is handled, at any depth, carries ``request_id`` and
``trace_id`` without passing them around. ``configure_logging`` is called once by each CLI
command (``--log-format text|json``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import os
from collections.abc import Iterator

__all__ = [
    "JsonFormatter",
    "LOG_FORMATS",
    "configure_logging",
    "new_request_id",
    "request_ids",
    "request_scope",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_REQUEST: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "runnerfleet_request", default=None
)


def new_request_id() -> str:
    """A fresh id for a request that came without one."""
    return os.urandom(8).hex()


@contextlib.contextmanager
def request_scope(request_id: str, trace_id: str | None) -> Iterator[None]:
    """Lines logged inside carry ``request_id`` and ``trace_id`` (when known)."""
    token = _REQUEST.set((request_id, trace_id))
    try:
        yield
    finally:
        _REQUEST.reset(token)


def request_ids() -> tuple[str, str | None] | None:
    """The (request id, trace id) bound to the current task, if any."""
    return _REQUEST.get()


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
            line["request_id"] = ids[0]
            if ids[1]:
                line["trace_id"] = ids[1]
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
        tail = f" request_id={ids[0]}" + (f" trace_id={ids[1]}" if ids[1] else "")
        return text + tail


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Set up the root logger once for the process (stderr)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
