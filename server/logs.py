"""Structured logs: one JSON object per line, the RPC's request id on every line it causes.

A line looks like::

    {"time": "2026-11-29T17:30:30.502Z", "level": "INFO", "logger": "privsynth.server.jobs.endings",
     "message": "job.succeeded", "request_id": "…", "rpc_method": "/privsynth.v1.Training/…",
     "event": "job.succeeded", "job_id": "…", "steps": 120, "epsilon": 2.91}

``request_id`` and ``rpc_method`` come from :func:`rpc_scope`, which the gRPC interceptor
opens around every call (and which returns the same id to the caller as ``x-request-id``), so
any line logged while a call is handled carries them without the code that logs knowing
about requests. Lifecycle events go through :func:`log_event`: a dotted name and fields that are
ids, counts, states and numbers, never text from a corpus. When OpenTelemetry tracing is on,
``trace_id`` and ``span_id`` join the line, to go from a log line to its trace.

An exception attached to a record (``log.exception``) is written as its type and stack only:
exception messages in this code base may quote input text (see the interceptor), and a
traceback's source lines are ours, while its message is not.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "FieldValue",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "log_event",
    "quiet_alembic",
    "rpc_scope",
]

FieldValue = str | int | float | bool | None
"""What an event field may hold: ids, states, counts and numbers."""

_rpc: ContextVar[tuple[str, str] | None] = ContextVar("privsynth_rpc", default=None)

# Every attribute a LogRecord has of its own; anything else on a record came through `extra`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_FIXED = ("time", "level", "logger", "message", "request_id", "rpc_method")

# Alembic logs every plugin it sets up and two lines about the dialect each time a server
# checks or migrates the schema; what it does ("Running upgrade a -> b") stays.
_ALEMBIC_BOILERPLATE = ("Context impl ", "Will assume ")


@contextmanager
def rpc_scope(request_id: str, method: str) -> Iterator[None]:
    """Tag every line logged in this block (this thread) with the call's id and method."""
    previous = _rpc.get()
    mine = (request_id, method)
    _rpc.set(mine)
    try:
        yield
    finally:
        # Not reset with a token: a streaming call's generator may be closed (garbage
        # collected) on another thread, in the middle of another call, whose tag stays.
        if _rpc.get() is mine:
            _rpc.set(previous)


def current_request_id() -> str | None:
    """The id of the call being handled on this thread, if any."""
    scope = _rpc.get()
    return scope[0] if scope is not None else None


def log_event(logger: logging.Logger, name: str, /, **fields: FieldValue) -> None:
    """Log lifecycle event ``name`` (e.g. ``job.started``) with ``fields`` at INFO.

    Fields are ids, states and numbers only (the type says so; the discipline is the
    caller's): a corpus record, a display name or an exception message never goes here.
    """
    logger.info(name, extra={"event": name, **{f"f_{k}": v for k, v in fields.items()}})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event fields a record carries (``extra`` keys, ``f_`` prefix removed)."""
    found: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        name = key[2:] if key.startswith("f_") else key
        if name not in _FIXED:
            found[name] = value
    return found


def _trace_ids() -> dict[str, str]:
    """The current OpenTelemetry trace and span ids, when tracing is on and a span is open."""
    trace_mod = sys.modules.get("opentelemetry.trace")
    if trace_mod is None:  # tracing never configured: OpenTelemetry not even imported
        return {}
    context = trace_mod.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the keys)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        scope = _rpc.get()
        if scope is not None:
            line["request_id"], line["rpc_method"] = scope
        line.update(_trace_ids())
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: the classic format plus ``key=value`` fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line, event fields and request id appended."""
        saved = record.exc_info, record.exc_text
        if record.exc_info and record.exc_info[0] is not None:
            # Type and stack, never the message (see the module docstring).
            record.exc_text = f"{record.exc_info[0].__name__} at\n" + "".join(
                traceback.format_tb(record.exc_info[2])
            ).rstrip("\n")
            record.exc_info = None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        extras = _fields(record)
        request_id = current_request_id()
        if request_id is not None:
            extras["request_id"] = request_id
        extras.pop("event", None)
        if not extras:
            return text
        head, sep, rest = text.partition("\n")
        return head + " " + " ".join(f"{k}={v}" for k, v in extras.items()) + sep + rest


class _AlembicBoilerplate(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ALEMBIC_BOILERPLATE)


def configure_logging(level: str = "INFO", fmt: Literal["json", "text"] = "json") -> None:
    """Send every logger's records to stderr, one line each, in ``fmt``; quiet Alembic.

    Replaces handlers the root logger had (a second call reconfigures, it does not double
    every line).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_alembic()


def quiet_alembic() -> None:
    """Drop Alembic's plugin and dialect lines (idempotent; servers call it however embedded)."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, _AlembicBoilerplate) for f in migration.filters):
        migration.addFilter(_AlembicBoilerplate())
