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
    assert main(["scrub", str(src), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr()
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
