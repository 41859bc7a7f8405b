"""Structured logs: one JSON object per line, request ids, event fields, Alembic kept quiet."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.server.db import Database
from privsynth.server.logs import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    current_request_id,
    log_event,
    rpc_scope,
)

SECRET = "patient Zebulon Quagmire"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("privsynth.test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None, extra=extra)


def test_json_line_has_the_fixed_keys_and_the_event_fields() -> None:
    captured: list[logging.LogRecord] = []
    logger = logging.getLogger("privsynth.test.events")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with rpc_scope("req-1", "/privsynth.v1.Training/CreateTrainingJob"):
            assert current_request_id() == "req-1"
            log_event(logger, "job.created", job_id="abc", epsilon=1.5, records=40, name="x")
            line = json.loads(JsonFormatter().format(captured[-1]))
        assert current_request_id() is None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert line["level"] == "INFO"
    assert line["logger"] == "privsynth.test.events"
    assert line["message"] == "job.created"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["request_id"] == "req-1"
    assert line["rpc_method"] == "/privsynth.v1.Training/CreateTrainingJob"
    assert line["event"] == "job.created"
    # Fields land at the top level; a field named like a LogRecord attribute is no problem.
    assert (line["job_id"], line["epsilon"], line["records"], line["name"]) == ("abc", 1.5, 40, "x")
    assert "trace_id" not in line  # tracing is off


def test_exceptions_are_logged_by_type_and_stack_never_by_message() -> None:
    try:
        raise ValueError(SECRET)
    except ValueError:
        logger = logging.getLogger("privsynth.test")
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["exc_type"] == "ValueError"
    assert "test_logs.py" in line["stack"]
    assert SECRET not in json.dumps(line)
    text = TextFormatter().format(record)
    assert "ValueError" in text and "test_logs.py" in text
    assert SECRET not in text


def test_text_lines_append_fields() -> None:
    with rpc_scope("req-2", "/m"):
        text = TextFormatter().format(_record("job.started", f_job_id="abc", event="job.started"))
    assert text.endswith("privsynth.test: job.started job_id=abc request_id=req-2")


def test_every_line_is_one_json_object_and_alembic_is_quiet(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")  # reconfiguring does not double the lines
    db = Database(f"sqlite:///{tmp_path}/privsynth.db")
    try:
        db.migrate()
    finally:
        db.close()
    logging.getLogger("privsynth.test").info("multi\nline %s", "message")
    lines = capsys.readouterr().err.splitlines()
    parsed = [json.loads(line) for line in lines]  # every line parses on its own
    messages = [p["message"] for p in parsed]
    assert messages.count("multi\nline message") == 1
    assert any(m.startswith("Running upgrade") for m in messages)
    assert not [m for m in messages if "setup plugin" in m or m.startswith("Context impl")]
