"""`privsynth scrub FILE` end to end: real workers, streamed file, report without text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import SECRET_EMAIL, SECRET_NAME, tickets
from privsynth.client.cli import main


def test_scrub_file_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "tickets.jsonl"
    with src.open("w") as fh:
        for r in tickets(8):
            fh.write(json.dumps({"text": r.text, "label": r.label}) + "\n")
        fh.write("{not json " + SECRET_NAME + "\n")
    out = tmp_path / "clean.jsonl"
    assert main(["scrub", str(src), "--out", str(out), "--workers", "1"]) == 65
    printed = capsys.readouterr()
    assert f"{src}:9: not valid JSON" in printed.err and "--skip-malformed" in printed.err
    assert SECRET_NAME not in printed.out + printed.err
    assert SECRET_EMAIL not in printed.out + printed.err
    report = json.loads(printed.out[: printed.out.rindex("}") + 1])
    assert report["records_in"] == 8
    assert report["malformed_count"] == 1
    assert report["entity_counts"]["EMAIL_ADDRESS"] == 2
    assert report["residual_count"] == 0
    body = out.read_text()
    assert SECRET_NAME not in body and SECRET_EMAIL not in body
    assert len(body.splitlines()) == 8


MBOX = b"""From hq@mail.example.net Thu Aug 22 12:00:00 2002
From: =?iso-8859-1?Q?Horatio_Quimb=FF?= <hq@mail.example.net>
To: Renee Zylberstein <rz@example.org>
Received: from quimby-pc.example.net ([198.51.100.23]) by relay.example.org (Postfix)
Subject: relay
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

Renee> does it work?
It does, Renee. Postfix speaks SMTP.

From rz@example.org Thu Aug 22 12:00:01 2002
just a line, no header fields

From rz@example.org Thu Aug 22 12:00:02 2002
From: Renee Zylberstein <rz@example.org>
To: Horatio Quimby <hq@mail.example.net>
Subject: =?utf-8?q?Re:_relay?=

Thanks, Horatio.
"""


def _report(out: str) -> dict[str, object]:
    return json.loads(out[: out.rindex("}") + 1])  # type: ignore[no-any-return]


def test_scrub_mbox_cli_keeps_the_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "list.mbox"
    src.write_bytes(MBOX)
    assert main(["scrub", str(src), "--workers", "1", "--skip-malformed"]) == 0
    out = tmp_path / "list.scrubbed.mbox"
    printed = capsys.readouterr()
    report = _report(printed.out)
    assert report["format"] == "mbox" and report["records_out"] == 2
    assert report["malformed"] == [{"line": 12, "reason": "message 2: no header fields"}]
    body = out.read_text()
    for secret in ("Horatio", "Quimb", "Renee", "Zylberstein", "example.org", "198.51.100"):
        assert secret not in body and secret not in printed.out + printed.err
    assert "Postfix speaks SMTP" in body and "<PERSON>> does it work?" in body
    assert body.count("\nFrom ") + body.startswith("From ") == 2
    assert "\nSubject: relay\n" in body and "Content-Transfer-Encoding: quoted-printable" in body


def test_oversized_record_fails_the_run_unless_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big.jsonl"
    src.write_text(
        json.dumps({"text": "short one"})
        + "\n"
        + json.dumps({"text": f"{SECRET_NAME} " * 20_000})
        + "\n"
        + json.dumps({"text": "short two"})
        + "\n"
    )
    out = tmp_path / "big.out.jsonl"
    args = ["scrub", str(src), "--out", str(out), "--workers", "1", "--oversize", "refuse"]
    assert main(args) == 65
    printed = capsys.readouterr()
    assert f"{src}:2: document over the limit of 65536 chars" in printed.err
    assert "--skip-oversized" in printed.err and SECRET_NAME not in printed.out + printed.err
    assert len(out.read_text().splitlines()) == 2
    assert main([*args, "--skip-oversized"]) == 0
    assert _report(capsys.readouterr().out)["refused_count"] == 1


def test_scrub_refuses_to_overwrite_its_input_and_names_outputs_by_the_whole_stem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "tickets.2024.jsonl", tmp_path / "tickets.2025.jsonl"
    first.write_text('{"text": "call 555 0100"}\n' * 3)
    second.write_text('{"text": "call 555 0199"}\n')
    assert main(["scrub", str(first), "--out", str(first), "--workers", "1"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert first.read_text().count("\n") == 3
    assert main(["scrub", str(first), "--workers", "1"]) == 0
    assert main(["scrub", str(second), "--workers", "1"]) == 0
    assert len((tmp_path / "tickets.2024.scrubbed.jsonl").read_text().splitlines()) == 3
    assert len((tmp_path / "tickets.2025.scrubbed.jsonl").read_text().splitlines()) == 1


def test_scrub_input_and_option_errors_have_their_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "in.jsonl"
    good.write_text('{"text": "hello"}\n')
    assert main(["scrub", str(tmp_path / "missing.jsonl")]) == 66
    assert main(["scrub", str(good), "--workers", "0"]) == 2
    assert main(["scrub", str(good), "--key-file", str(tmp_path / "no-key")]) == 66
    assert main(["scrub", str(good), "--out", str(tmp_path / "no" / "dir.jsonl")]) == 66
    assert main(["scrub", str(good), "--text-field", "body", "--workers", "1"]) == 65
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no-key" in err
