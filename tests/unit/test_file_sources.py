"""Streaming corpus files into the scrubber: formats, gzip, bad lines, oversize documents.

A fake scrubber (digits become '#') keeps these tests free of spaCy; the real pipeline is
covered by test_scrub_pipeline.py.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from privsynth.server.scrubbing.file_sources import (
    FileSourceError,
    SourceStats,
    read_records,
    scrub_file,
    split_text,
)
from privsynth.server.scrubbing.scrubber import ScrubResult
from privsynth.server.scrubbing.strategies import ScrubPolicy

SECRET = "Zebulon-4242"


class FakeScrubber:
    description = "fake"
    strategy = "placeholder"
    residual_check = True
    policy = ScrubPolicy()

    def __init__(self) -> None:
        self.calls: list[int] = []

    def scrub_batch(self, texts: Sequence[str]) -> list[ScrubResult]:
        self.calls.append(len(texts))
        out = []
        for t in texts:
            n = len(re.findall(r"\d+", t))
            out.append(
                ScrubResult(
                    text=re.sub(r"\d+", "<NUM>", t),
                    entity_counts={"ACCOUNT_NUMBER": n} if n else {},
                    strategy_counts={"placeholder": n} if n else {},
                    residual_counts={"URL": 1} if "http" in t else {},
                )
            )
        return out


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_with_malformed_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"text": "acct 123", "label": "a", "user_id": "u"}\n'
        f"{SECRET} not json\n"
        "[1, 2]\n"
        '{"text": 5}\n'
        "\n"
        '{"text": "see http://x", "label": "b"}\n'
    )
    out = tmp_path / "out.jsonl"
    seen: list[tuple[int, int, int]] = []
    rep = scrub_file(src, out, scrubber=FakeScrubber(), progress=lambda *a: seen.append(a))
    assert _read(out) == [
        {"text": "acct <NUM>", "label": "a"},  # user_id is not carried over
        {"text": "see http://x", "label": "b"},
    ]
    assert [(m.line, m.reason) for m in rep.malformed] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
        (4, "no string field 'text'"),
    ]
    assert rep.malformed_count == 3 and rep.records_in == 2 and rep.records_out == 2
    assert rep.entity_counts == {"ACCOUNT_NUMBER": 1}
    assert rep.strategy_counts == {"placeholder": 1}
    assert rep.strategies == {"ACCOUNT_NUMBER": "placeholder"}
    assert rep.residual_count == 1 and rep.residual_counts == {"URL": 1}
    assert seen[-1][0] == 2 and seen[-1][1] == seen[-1][2] == src.stat().st_size
    assert SECRET not in json.dumps(rep.to_dict())


def test_gzip_csv_and_text(tmp_path: Path) -> None:
    csv_gz = tmp_path / "in.csv.gz"
    with gzip.open(csv_gz, "wt") as f:
        f.write('text,label\n"call 555",x\n"too",many,fields\n"two\nlines 7",y\n')
    rep = scrub_file(csv_gz, tmp_path / "o1.jsonl", scrubber=FakeScrubber())
    assert rep.format == "csv"
    assert _read(tmp_path / "o1.jsonl") == [
        {"text": "call <NUM>", "label": "x"},
        {"text": "two\nlines <NUM>", "label": "y"},
    ]
    assert [(m.line, m.reason) for m in rep.malformed] == [(3, "expected 2 fields, found 3")]

    txt = tmp_path / "in.txt"
    txt.write_bytes(b"one 1\n\n\xff\xfe bad bytes\nthree 3\n")
    rep = scrub_file(txt, tmp_path / "o2.jsonl", scrubber=FakeScrubber())
    assert [r["text"] for r in _read(tmp_path / "o2.jsonl")] == ["one <NUM>", "three <NUM>"]
    assert [(m.line, m.reason) for m in rep.malformed] == [(3, "not valid UTF-8")]


def test_gzip_detected_by_magic_bytes(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(gzip.compress(b'{"text": "a 1"}\n'))
    stats = SourceStats()
    assert [r.text for r in read_records(src, stats)] == ["a 1"]


def test_csv_without_text_column(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("body,label\nx,y\n")
    with pytest.raises(FileSourceError, match="no column 'text'"):
        scrub_file(src, tmp_path / "o.jsonl", scrubber=FakeScrubber())
    assert not (tmp_path / "o.jsonl").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_unknown_format(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    src.write_text("x")
    with pytest.raises(FileSourceError, match="cannot tell the format"):
        scrub_file(src, tmp_path / "o.jsonl", scrubber=FakeScrubber())


def test_parquet_without_pyarrow_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow is in the server extra, so simulate an install without it.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    src = tmp_path / "in.parquet"
    src.write_bytes(b"PAR1")
    with pytest.raises(FileSourceError, match="'pyarrow' package"):
        scrub_file(src, tmp_path / "o.jsonl", scrubber=FakeScrubber())


def test_oversize_chunked_or_refused(tmp_path: Path) -> None:
    long = "word 1. " * 50
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": long}) + "\n" + json.dumps({"text": "short 2"}) + "\n")
    scrubber = FakeScrubber()
    rep = scrub_file(src, tmp_path / "o.jsonl", scrubber=scrubber, max_doc_chars=64)
    texts = [r["text"] for r in _read(tmp_path / "o.jsonl")]
    assert texts == [long.replace("1", "<NUM>"), "short <NUM>"]
    assert rep.chunked_records == 1 and rep.entity_counts == {"ACCOUNT_NUMBER": 51}

    rep = scrub_file(
        src, tmp_path / "o2.jsonl", scrubber=FakeScrubber(), max_doc_chars=64, oversize="refuse"
    )
    assert [r["text"] for r in _read(tmp_path / "o2.jsonl")] == ["short <NUM>"]
    assert [(m.line, m.reason) for m in rep.refused] == [(1, "document over the limit of 64 chars")]
    assert rep.refused_count == 1


def test_split_text_round_trips() -> None:
    text = "Hello there. I am here.\nNext line is long too and has words " * 3
    for limit in (1, 7, 20, 64):
        pieces = split_text(text, limit)
        assert "".join(pieces) == text and all(len(p) <= limit for p in pieces)
    assert split_text("ab. cd ef", 6) == ["ab. ", "cd ef"]


def test_streams_in_bounded_chunks(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(1000)))
    scrubber = FakeScrubber()
    rep = scrub_file(src, tmp_path / "o.jsonl", scrubber=scrubber)
    assert rep.records_out == 1000 and max(scrubber.calls) <= 64


def test_parquet_streams_by_row_group(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from privsynth.server.scrubbing.file_sources import SourceStats, read_records

    table = pa.table({"text": [f"row {i}" for i in range(250)], "label": ["a"] * 250})
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=100)
    rows = list(read_records(src, SourceStats()))
    assert len(rows) == 250
    assert rows[0].text == "row 0"
    assert rows[-1].fields["label"] == "a"


def test_a_line_too_large_to_read_is_refused_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privsynth.client import sources

    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 64)
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "a 1"}) + "\n" + json.dumps({"text": SECRET * 20}) + "\n"
        '{"text": "b 2"}\n'
    )
    rep = scrub_file(src, tmp_path / "o.jsonl", scrubber=FakeScrubber())
    assert [r["text"] for r in _read(tmp_path / "o.jsonl")] == ["a <NUM>", "b <NUM>"]
    assert [(i.line, i.reason) for i in rep.refused] == [(2, "line over 64 bytes")]
    assert rep.refused_count == 1 and rep.malformed_count == 0
    assert SECRET not in json.dumps(rep.to_dict())


def test_a_local_scrub_copies_labels_as_the_file_holds_them(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"text": "a", "label": 3}\n{"text": "b", "label": [1, 2]}\n{"text": "c", "label": null}\n'
    )
    out = tmp_path / "out.jsonl"
    rep = scrub_file(src, out, scrubber=FakeScrubber())
    assert rep.malformed_count == 0
    assert [r.get("label", "absent") for r in _read(out)] == [3, [1, 2], None]
