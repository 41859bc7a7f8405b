"""The mail register of the real-text PII set: how messages become records, and that the committed
records are exactly what the hand-written label tables say (issue 13)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = BENCH / "data" / "pii_real" / "mail.jsonl"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mail = _load("pii_real_mail")
labels = _load("pii_real_mail_labels")
RECORDS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def _message(raw: str) -> object:
    return message_from_bytes(raw.encode("latin-1"), policy=compat32)


ALTERNATIVE = """\
From: =?iso-8859-1?q?P=E1draig?= Brady <pb@example.org>
To: list@example.org
Date: Wed, 28 Aug 2002 10:20:35 +0100
Subject: =?utf-8?b?Q2Fmw6k=?= talk
Message-ID: <1@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe,
P=E1draig
--b
Content-Type: text/html

<p>Gr&uuml;&szlig;e</p>
--b--
"""

HTML_ONLY = """\
From: a@example.org
Content-Type: text/html

<p>hi</p>
"""


def test_a_message_renders_as_its_headers_and_decoded_plain_body() -> None:
    rendered = mail.render(_message(ALTERNATIVE))
    assert rendered.text == (
        "From: Pádraig Brady <pb@example.org>\nTo: list@example.org\n"
        "Date: Wed, 28 Aug 2002 10:20:35 +0100\nSubject: Café talk\n\nGrüße,\nPádraig"
    )
    assert rendered.dropped == ["text/html"]
    assert rendered.charset == "iso-8859-1"


def test_html_only_message_gives_no_record() -> None:
    assert mail.render(_message(HTML_ONLY)) is None


def test_raw_8bit_header_bytes_are_read_as_latin1_when_not_utf8() -> None:
    msg = _message("From: Ren\xe9 <r@example.org>\n\nbody\n")
    assert mail.render(msg).text.startswith("From: René <r@example.org>\n")


def test_cut_keeps_whole_lines_and_a_one_line_body() -> None:
    text = "Subject: x\n\n" + "word " * 400
    short, where = mail.cut(text, limit=100)
    assert where == "space inside a long line"
    assert 66 <= len(short) <= 100 and text.startswith(short)
    lines = "line of text\n" * 20
    short, where = mail.cut(lines, limit=100)
    assert where == "line boundary" and short == "line of text\n" * 6 + "line of text"
    assert mail.cut("short", limit=100) == ("short", None)


def test_committed_spans_are_what_the_label_tables_give() -> None:
    assert {r["id"] for r in RECORDS} == labels.LABELS.keys()
    for rec in RECORDS:
        assert rec["spans"] == labels.spans_for(rec["text"], labels.LABELS[rec["id"]], rec["id"])


def test_committed_records_follow_the_guideline_shape() -> None:
    classes = [r["source"]["class"] for r in RECORDS]
    assert len(RECORDS) >= 170 and classes.count("ham") >= 110 and classes.count("spam") >= 60
    assert len({r["id"] for r in RECORDS}) == len(RECORDS)
    for rec in RECORDS:
        assert rec["register"] == "mail" and len(rec["text"]) <= mail.MAX_CHARS
        assert rec["source"]["licence"].startswith("as the package states in LICENSE: ")
        previous_end = 0
        for start, end, etype in rec["spans"]:
            assert etype in labels.TYPES
            assert previous_end <= start < end <= len(rec["text"])
            assert rec["text"][start:end] == rec["text"][start:end].strip()
            previous_end = end
    tests = sum(int(hashlib.sha256(r["id"].encode()).hexdigest()[:8], 16) % 5 < 3 for r in RECORDS)
    assert 0 < tests < len(RECORDS)


def test_an_unknown_value_or_a_partial_overlap_stops_the_labelling() -> None:
    text = "From: Jim Smith <jim@example.org>\n"
    with pytest.raises(SystemExit, match="not found"):
        labels.spans_for(text, [("Jon", "PERSON")], "r")
    with pytest.raises(SystemExit, match="overlap"):
        labels.spans_for(text, [("Jim Smith", "PERSON"), ("Smith <jim", "PERSON")], "r")
    spans = labels.spans_for(text, [("jim", "PERSON"), ("jim@example.org", "EMAIL_ADDRESS")], "r")
    assert spans == [[17, 32, "EMAIL_ADDRESS"]]
