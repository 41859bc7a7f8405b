"""Read local corpus files (JSONL, CSV, Parquet, text, e-mail; optionally gzip) record by record.

Shared by the ``privsynth upload`` command (client) and ``privsynth scrub`` (server, through
:mod:`privsynth.server.scrubbing.file_sources`), so both read a file the same way. Pure Python: only
Parquet needs an extra package (``pyarrow``, installed with ``privsynth[parquet]``), imported when
a Parquet file is read.

Bad input never reaches a message: a malformed JSONL or CSV line is counted in
:class:`SourceStats` and reported by line number and reason only ("not valid JSON"), and a
record too large to read (a line over :data:`MAX_LINE_BYTES`, a message over
:data:`~privsynth.client.mailfiles.MAX_MESSAGE_BYTES`) is counted apart as oversized, by line.

E-mail (``.eml``: one ``message/rfc822`` message; ``.mbox``: one record per message) is read by
:mod:`privsynth.client.mailfiles`; each record's text is :func:`~privsynth.client.mailfiles.\
compact_record` (mailboxes, Subject, body text), which is what an upload sends.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from privsynth.client.mailfiles import (
    MAIL_FORMATS,
    MAX_MESSAGE_BYTES,
    RawMessage,
    compact_record,
    malformed_reason,
    parse_message,
    read_eml,
    split_mbox,
)

__all__ = [
    "FORMATS",
    "MAX_LINE_BYTES",
    "MAX_LISTED_ISSUES",
    "FileSourceError",
    "LineIssue",
    "SourceRecord",
    "SourceStats",
    "detect_format",
    "read_messages",
    "read_records",
]

_T = TypeVar("_T")

FORMATS = ("jsonl", "csv", "parquet", "text", *MAIL_FORMATS)
#: Physical lines longer than this are not parsed at all (JSONL/CSV/text) - the bound on what
#: one bad line can make us hold in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Malformed/refused lines listed individually in a report; the rest are only counted.
MAX_LISTED_ISSUES = 1000

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
    ".eml": "eml",
    ".mbox": "mbox",
    ".mbx": "mbox",
}


class FileSourceError(ValueError):
    """The file cannot be read as a corpus at all (unknown format, missing column, no pyarrow)."""


@dataclass(frozen=True)
class LineIssue:
    """A line (row, for Parquet) that was skipped or refused, and why. Never its content."""

    line: int
    reason: str


@dataclass(frozen=True)
class SourceRecord:
    """One document read from a file.

    Attributes:
        line: 1-based line number (for CSV the line the row ends on; for Parquet the row).
        text: The document.
        fields: The other requested columns (``keep_fields``) present in the record, as
            strings (an integer label or user id in decimal; a null is absent), or as the
            file holds them when read with ``raw_fields``.
    """

    line: int
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceStats:
    """Counters a reader fills in as it goes (the caller owns it)."""

    records: int = 0
    malformed_count: int = 0
    malformed: list[LineIssue] = field(default_factory=list)
    #: Records too large to be read at all, by the line they start on.
    oversized_count: int = 0
    oversized: list[LineIssue] = field(default_factory=list)
    bytes_read: int = 0
    total_bytes: int = 0

    def bad(self, line: int, reason: str) -> None:
        """Record a malformed line (listed up to :data:`MAX_LISTED_ISSUES`)."""
        self.malformed_count += 1
        if len(self.malformed) < MAX_LISTED_ISSUES:
            self.malformed.append(LineIssue(line, reason))

    def too_big(self, line: int, reason: str) -> None:
        """Record a record over a size limit (listed up to :data:`MAX_LISTED_ISSUES`)."""
        self.oversized_count += 1
        if len(self.oversized) < MAX_LISTED_ISSUES:
            self.oversized.append(LineIssue(line, reason))


def detect_format(path: Path) -> tuple[str, bool]:
    """(format, gzipped) from the file name, e.g. ``tickets.jsonl.gz`` -> ("jsonl", True).

    Gzip is also recognised by its magic bytes, whatever the name.

    Raises:
        FileSourceError: The suffix names no supported format.
    """
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] in (".gz", ".gzip")
    if gz:
        suffixes = suffixes[:-1]
    else:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        names = ", ".join(s for s in _SUFFIXES if s not in _ALIASES)
        raise FileSourceError(
            f"cannot tell the format of {path.name}: name it {names} (optionally .gz), or give "
            f"--format (one of {', '.join(FORMATS)})"
        )
    return fmt, gz


#: Suffixes accepted but not advertised (another spelling of an advertised one).
_ALIASES = frozenset({".ndjson", ".json", ".pq", ".text", ".mbx"})


class _Counting(io.RawIOBase):
    """A read-only wrapper that counts bytes read from the file on disk (for progress)."""

    def __init__(self, raw: IO[bytes], stats: SourceStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        self._stats.bytes_read += n or 0
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_binary(path: Path, gz: bool, stats: SourceStats) -> IO[bytes]:
    stats.total_bytes = path.stat().st_size
    raw = io.BufferedReader(_Counting(open(path, "rb"), stats))  # noqa: SIM115
    if gz:
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def _lines(f: IO[bytes], stats: SourceStats) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per physical line; text None (and counted) if unreadable."""
    n = 0
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the giant line
                line = f.readline(MAX_LINE_BYTES)
            stats.too_big(n, f"line over {MAX_LINE_BYTES} bytes")
            yield n, None
            continue
        try:
            yield n, line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            stats.bad(n, "not valid UTF-8")
            yield n, None


def _jsonl(
    f: IO[bytes], stats: SourceStats, text_field: str, keep: Sequence[str], raw: bool = False
) -> Iterator[SourceRecord]:
    for n, line in _lines(f, stats):
        if line is None or not line.strip():
            continue
        try:  # line 1 may start with a byte-order mark some editors write
            obj = json.loads(line.removeprefix("\ufeff") if n == 1 else line)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            stats.bad(n, "not valid JSON")
            continue
        if not isinstance(obj, dict):
            stats.bad(n, "not a JSON object")
            continue
        text = obj.get(text_field)
        if not isinstance(text, str):
            stats.bad(n, f"no string field {text_field!r}")
            continue
        if not _encodable(text):
            stats.bad(n, f"field {text_field!r} holds an unpaired surrogate escape (\\ud800)")
            continue
        kept = {k: obj[k] for k in keep if k in obj} if raw else _kept_fields(obj, keep)
        if isinstance(kept, str):
            stats.bad(n, kept)
            continue
        yield SourceRecord(n, text, kept)


def _encodable(value: str) -> bool:
    """False for a string with a lone surrogate (a JSON escape), which UTF-8 cannot carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kept_fields(row: Mapping[str, Any], keep: Sequence[str]) -> dict[str, str] | str:
    """The kept columns as strings, or the reason the row is refused.

    A label or user id must be a string or an integer (written in decimal): ``0`` is a user
    id like any other, not a missing one, while ``true``, ``1.5``, a list or an object has no
    one obvious spelling and is refused rather than guessed at. A null (or NaN) is an absent
    field; a float with no fraction (``3.0``) is the integer.
    """
    kept: dict[str, str] = {}
    for k in keep:
        value = row.get(k)
        if isinstance(value, float) and (math.isnan(value) or value.is_integer()):
            # Parquet from pandas stores an integer column with gaps as float64: 3.0 and NaN.
            value = None if math.isnan(value) else int(value)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            return f"field {k!r} must be a string or an integer, not {_json_type(value)}"
        if isinstance(value, str) and not _encodable(value):
            return f"field {k!r} holds an unpaired surrogate escape (\\ud800)"
        kept[k] = str(value)
    return kept


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _csv(
    f: IO[bytes], stats: SourceStats, text_field: str, keep: Sequence[str]
) -> Iterator[SourceRecord]:
    # Physical lines are decoded one by one so a bad byte costs one row, not the file; the
    # csv module then joins quoted multi-line fields itself.
    def decoded() -> Iterator[str]:
        for _, line in _lines(f, stats):
            yield "" if line is None else line + "\n"

    # strict: a quote left open is an error on its row, not the rest of the file in one cell.
    reader = csv.reader(decoded(), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error:
        raise FileSourceError("the CSV header line cannot be parsed") from None
    if text_field not in header:
        raise FileSourceError(f"the CSV header has no column {text_field!r}")
    twice = sorted({k for k in (text_field, *keep) if header.count(k) > 1})
    if twice:
        raise FileSourceError(f"the CSV header names column {twice[0]!r} more than once")
    idx = header.index(text_field)
    keep_idx = {k: header.index(k) for k in keep if k in header}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            stats.bad(reader.line_num, "not valid CSV")
            continue
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            stats.bad(reader.line_num, f"expected {len(header)} fields, found {len(row)}")
            continue
        yield SourceRecord(reader.line_num, row[idx], {k: row[i] for k, i in keep_idx.items()})


def _text(f: IO[bytes], stats: SourceStats) -> Iterator[SourceRecord]:
    for n, line in _lines(f, stats):
        if line is not None and line.strip():
            yield SourceRecord(n, line)


def _parquet(
    path: Path, stats: SourceStats, text_field: str, keep: Sequence[str], raw: bool = False
) -> Iterator[SourceRecord]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise FileSourceError(
            "reading Parquet needs the 'pyarrow' package: install privsynth[parquet] "
            "(or pip install pyarrow), or convert the file to JSONL or CSV"
        ) from None
    import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]

    try:
        pf = pq.ParquetFile(str(path))
    except pa.ArrowException:  # ArrowInvalid and kin: not Parquet, or a damaged footer
        raise FileSourceError("not a readable Parquet file (damaged, or another format)") from None
    names = set(pf.schema_arrow.names)
    if text_field not in names:
        raise FileSourceError(f"the Parquet file has no column {text_field!r}")
    columns = [text_field, *[k for k in keep if k in names and k != text_field]]
    stats.total_bytes = path.stat().st_size
    total_rows = max(int(pf.metadata.num_rows), 1)
    row = 0
    batches = pf.iter_batches(batch_size=1024, columns=columns)
    while True:
        try:
            batch = next(batches, None)
        except pa.ArrowException:
            raise FileSourceError(f"the Parquet file is damaged after row {row}") from None
        if batch is None:
            return
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            row += 1
            text = data[text_field][i]
            if not isinstance(text, str):
                stats.bad(row, f"column {text_field!r} is not a string")
                continue
            row_fields = {k: data[k][i] for k in columns[1:]}
            kept = row_fields if raw else _kept_fields(row_fields, keep)
            if isinstance(kept, str):
                stats.bad(row, kept)
                continue
            yield SourceRecord(row, text, kept)
        stats.bytes_read = stats.total_bytes * row // total_rows


def read_records(
    path: Path,
    stats: SourceStats,
    *,
    fmt: str | None = None,
    text_field: str = "text",
    keep_fields: Sequence[str] = ("label",),
    raw_fields: bool = False,
) -> Iterator[SourceRecord]:
    """Stream the documents of a corpus file, counting bad lines in ``stats``.

    Args:
        path: The file; the format comes from its name unless ``fmt`` is given.
        stats: Filled in while iterating (records, malformed lines, bytes read).
        fmt: One of :data:`FORMATS`, overriding the name. For e-mail (``eml``, ``mbox``) each
            record is a message's :func:`~privsynth.client.mailfiles.compact_record`.
        text_field: Column / JSON key holding the text (ignored for plain text).
        keep_fields: Other columns to carry along.
        raw_fields: Carry them as the file holds them (a local scrub copies them unchanged)
            instead of as checked strings (what an upload sends).

    Raises:
        FileSourceError: Unknown format, missing text column, or Parquet without pyarrow.
    """
    detected, gz = detect_format(path) if fmt is None else (fmt, _is_gzip(path))
    if detected not in FORMATS:
        raise FileSourceError(f"unknown format {detected!r}; choose one of {', '.join(FORMATS)}")
    if detected == "parquet":
        if gz:
            raise FileSourceError("gzipped Parquet is not supported: Parquet compresses itself")
        records = _parquet(path, stats, text_field, keep_fields, raw_fields)
    elif detected in MAIL_FORMATS:
        records = _mail_records(_messages(path, gz, detected, stats), stats)
    else:
        f = _open_binary(path, gz, stats)
        records = _with_close(
            f,
            _text(f, stats)
            if detected == "text"
            else _jsonl(f, stats, text_field, keep_fields, raw_fields)
            if detected == "jsonl"
            else _csv(f, stats, text_field, keep_fields),
        )
    for rec in records:
        stats.records += 1
        yield rec


def _messages(path: Path, gz: bool, fmt: str, stats: SourceStats) -> Iterator[RawMessage]:
    f = _open_binary(path, gz, stats)
    split = split_mbox if fmt == "mbox" else read_eml

    def read() -> Iterator[RawMessage]:
        for raw in split(f):
            if raw.data is None:
                stats.too_big(raw.line, f"message over the limit of {MAX_MESSAGE_BYTES} bytes")
                continue
            yield raw

    return _with_close(f, read())


def read_messages(
    path: Path, stats: SourceStats, *, fmt: str | None = None
) -> Iterator[RawMessage]:
    """Stream the messages of an ``.eml`` or mbox file (gzip too), one at a time, as bytes.

    Messages over the size limit are not yielded: they are counted in ``stats.oversized`` by
    the line they start on. ``stats.records`` is left to the caller (which decides what is
    malformed).

    Raises:
        FileSourceError: The file is not an e-mail format.
    """
    detected, gz = detect_format(path) if fmt is None else (fmt, _is_gzip(path))
    if detected not in MAIL_FORMATS:
        raise FileSourceError(f"{path.name} is not e-mail ({', '.join(MAIL_FORMATS)})")
    return _messages(path, gz, detected, stats)


def _mail_records(messages: Iterator[RawMessage], stats: SourceStats) -> Iterator[SourceRecord]:
    for raw in messages:
        assert raw.data is not None  # oversized messages are not yielded by _messages
        where = f"message {raw.number}"
        try:
            msg = parse_message(raw.data)
            reason = malformed_reason(msg)
            text = "" if reason else compact_record(msg)
        except Exception as exc:  # the email package on hostile input: the type, never text
            reason = f"cannot be parsed ({type(exc).__name__})"
        if reason:
            stats.bad(raw.line, f"{where}: {reason}")
        elif text:  # a message without Subject or body text is skipped, as a blank line is
            yield SourceRecord(raw.line, text)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _with_close(f: IO[bytes], it: Iterator[_T]) -> Iterator[_T]:
    try:
        yield from it
    except (OSError, EOFError) as exc:
        # A truncated gzip member, say: report the type, the position is in the stats.
        raise FileSourceError(
            f"the file could not be read to the end ({type(exc).__name__})"
        ) from None
    finally:
        f.close()
