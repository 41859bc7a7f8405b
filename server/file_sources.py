"""Stream local corpus files (JSONL, CSV, Parquet, plain text; optionally gzip) through scrubbing.

Everything is an iterator: a file is read one line (or one Parquet row batch) at a time and
scrubbed in bounded chunks by :class:`~privsynth.server.scrub_pipeline.ParallelScrubber`, so
a corpus of any size runs in constant memory. Bad input never stops a run and never reaches a
message: a malformed JSONL or CSV line is counted and reported by line number and reason only
("not valid JSON"), and a document over the size limit is split into pieces at whitespace and
scrubbed piece by piece (or, with ``oversize="refuse"``, reported by line number with the
limit).

:func:`scrub_file` writes scrubbed records as JSONL (``{"text": ..., "label": ...}``: only the
text and the ``keep_fields`` columns; other columns, such as user ids, are dropped because they
are not scrubbed) and returns a :class:`ScrubFileReport` of counts, never values.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

from privsynth.server.scrubber import ScrubResult

__all__ = [
    "FORMATS",
    "FileSourceError",
    "LineIssue",
    "ScrubFileReport",
    "SourceRecord",
    "SourceStats",
    "detect_format",
    "read_records",
    "scrub_file",
    "split_text",
]

FORMATS = ("jsonl", "csv", "parquet", "text")
#: Default largest document scrubbed in one piece (characters); matches the upload limit.
DEFAULT_MAX_DOC_CHARS = 65_536
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
        fields: The other requested columns (``keep_fields``) present in the record.
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
    bytes_read: int = 0
    total_bytes: int = 0

    def bad(self, line: int, reason: str) -> None:
        """Record a malformed line (listed up to :data:`MAX_LISTED_ISSUES`)."""
        self.malformed_count += 1
        if len(self.malformed) < MAX_LISTED_ISSUES:
            self.malformed.append(LineIssue(line, reason))


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
        raise FileSourceError(
            f"cannot tell the format of {path.name}: name it .jsonl, .csv, .parquet or .txt "
            "(optionally .gz), or pass the format"
        )
    return fmt, gz


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
            stats.bad(n, f"line over {MAX_LINE_BYTES} bytes")
            yield n, None
            continue
        try:
            yield n, line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            stats.bad(n, "not valid UTF-8")
            yield n, None


def _jsonl(
    f: IO[bytes], stats: SourceStats, text_field: str, keep: Sequence[str]
) -> Iterator[SourceRecord]:
    for n, line in _lines(f, stats):
        if line is None or not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            stats.bad(n, "not valid JSON")
            continue
        if not isinstance(obj, dict):
            stats.bad(n, "not a JSON object")
            continue
        text = obj.get(text_field)
        if not isinstance(text, str):
            stats.bad(n, f"no string field {text_field!r}")
            continue
        yield SourceRecord(n, text, {k: obj[k] for k in keep if k in obj})


def _csv(
    f: IO[bytes], stats: SourceStats, text_field: str, keep: Sequence[str]
) -> Iterator[SourceRecord]:
    # Physical lines are decoded one by one so a bad byte costs one row, not the file; the
    # csv module then joins quoted multi-line fields itself.
    def decoded() -> Iterator[str]:
        for _, line in _lines(f, stats):
            yield "" if line is None else line + "\n"

    reader = csv.reader(decoded())
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error:
        raise FileSourceError("the CSV header line cannot be parsed") from None
    if text_field not in header:
        raise FileSourceError(f"the CSV header has no column {text_field!r}")
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
    path: Path, stats: SourceStats, text_field: str, keep: Sequence[str]
) -> Iterator[SourceRecord]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise FileSourceError(
            "reading Parquet needs the 'pyarrow' package (pip install pyarrow)"
        ) from None
    pf = pq.ParquetFile(str(path))
    names = set(pf.schema_arrow.names)
    if text_field not in names:
        raise FileSourceError(f"the Parquet file has no column {text_field!r}")
    columns = [text_field, *[k for k in keep if k in names and k != text_field]]
    stats.total_bytes = path.stat().st_size
    total_rows = max(int(pf.metadata.num_rows), 1)
    row = 0
    for batch in pf.iter_batches(batch_size=1024, columns=columns):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            row += 1
            text = data[text_field][i]
            if not isinstance(text, str):
                stats.bad(row, f"column {text_field!r} is not a string")
                continue
            yield SourceRecord(row, text, {k: data[k][i] for k in columns[1:]})
        stats.bytes_read = stats.total_bytes * row // total_rows


def read_records(
    path: Path,
    stats: SourceStats,
    *,
    fmt: str | None = None,
    text_field: str = "text",
    keep_fields: Sequence[str] = ("label",),
) -> Iterator[SourceRecord]:
    """Stream the documents of a corpus file, counting bad lines in ``stats``.

    Args:
        path: The file; the format comes from its name unless ``fmt`` is given.
        stats: Filled in while iterating (records, malformed lines, bytes read).
        fmt: One of :data:`FORMATS`, overriding the name.
        text_field: Column / JSON key holding the text (ignored for plain text).
        keep_fields: Other columns to carry along.

    Raises:
        FileSourceError: Unknown format, missing text column, or Parquet without pyarrow.
    """
    detected, gz = detect_format(path) if fmt is None else (fmt, _is_gzip(path))
    if detected not in FORMATS:
        raise FileSourceError(f"unknown format {detected!r}; choose one of {', '.join(FORMATS)}")
    if detected == "parquet":
        if gz:
            raise FileSourceError("gzipped Parquet is not supported: Parquet compresses itself")
        records = _parquet(path, stats, text_field, keep_fields)
    else:
        f = _open_binary(path, gz, stats)
        records = _with_close(
            f,
            _text(f, stats)
            if detected == "text"
            else (_jsonl if detected == "jsonl" else _csv)(f, stats, text_field, keep_fields),
        )
    for rec in records:
        stats.records += 1
        yield rec


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _with_close(f: IO[bytes], it: Iterator[SourceRecord]) -> Iterator[SourceRecord]:
    try:
        yield from it
    except (OSError, EOFError) as exc:
        # A truncated gzip member, say: report the type, the position is in the stats.
        raise FileSourceError(
            f"the file could not be read to the end ({type(exc).__name__})"
        ) from None
    finally:
        f.close()


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at whitespace if possible.

    Cuts go after the last line break in the window, else after the last sentence end, else
    after the last space, so a multi-word value (an address, a name) is only cut when a single
    sentence is longer than the limit (then the pieces are scrubbed without each other's
    context: a known limit); joining the pieces gives back the text exactly.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    pieces = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        sentence = max(window.rfind(". "), window.rfind("? "), window.rfind("! "))
        cut = (
            window.rfind("\n") + 1
            or (sentence + 2 if sentence >= 0 else 0)
            or window.rfind(" ") + 1
            or limit
        )
        if cut < limit // 4:  # a cut that early makes tiny pieces; take the whole window
            cut = limit
        pieces.append(text[start : start + cut])
        start += cut
    pieces.append(text[start:])
    return pieces


# ----------------------------------------------------------------------------------------------
# scrub_file
# ----------------------------------------------------------------------------------------------


class SupportsScrub(Protocol):
    """What :func:`scrub_file` needs: a Scrubber or a ParallelScrubber."""

    @property
    def description(self) -> str:
        """Analyzer and pipeline."""
        ...

    @property
    def strategy(self) -> str:
        """Strategies in use."""
        ...

    def scrub_batch(self, texts: Sequence[str]) -> list[ScrubResult]:
        """Scrub texts in order."""
        ...


#: ``progress(records_done, bytes_read, total_bytes)``; bytes are of the file on disk.
ProgressFn = Callable[[int, int, int], None]


@dataclass
class ScrubFileReport:
    """What :func:`scrub_file` did, in counts only: safe to print, log and store.

    Attributes:
        format: File format read.
        records_in: Documents read.
        records_out: Documents written.
        records_with_pii: Documents in which at least one span was replaced.
        entity_counts: Replaced spans per entity type.
        strategy_counts: Replaced spans per strategy.
        strategies: Strategy per entity type seen.
        chunked_records: Documents over the size limit scrubbed in pieces.
        refused_count: Documents over the size limit refused (``oversize="refuse"``).
        refused: The first :data:`MAX_LISTED_ISSUES` of them, by line number, with the limit.
        malformed_count: Lines skipped as malformed.
        malformed: The first :data:`MAX_LISTED_ISSUES` of them, by line number and reason.
        residual_count: Structured identifiers found again in the output by the residual
            check, excluding the scrubber's own surrogates; ``None`` if the scrubber ran
            without the check.
        residual_counts: The same per entity type.
        analyzer: Scrubber description.
        strategy: Strategy summary.
        seconds: Wall time.
    """

    format: str
    records_in: int = 0
    records_out: int = 0
    records_with_pii: int = 0
    entity_counts: dict[str, int] = field(default_factory=dict)
    strategy_counts: dict[str, int] = field(default_factory=dict)
    strategies: dict[str, str] = field(default_factory=dict)
    chunked_records: int = 0
    refused_count: int = 0
    refused: list[LineIssue] = field(default_factory=list)
    malformed_count: int = 0
    malformed: list[LineIssue] = field(default_factory=list)
    residual_count: int | None = None
    residual_counts: dict[str, int] = field(default_factory=dict)
    analyzer: str = ""
    strategy: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _scrub_stream(scrubber: SupportsScrub, texts: Iterable[str]) -> Iterator[ScrubResult]:
    scrub_iter = getattr(scrubber, "scrub_iter", None)
    if scrub_iter is not None:
        yield from scrub_iter(texts)
        return
    it = iter(texts)
    while chunk := [t for _, t in zip(range(64), it, strict=False)]:
        yield from scrubber.scrub_batch(chunk)


def scrub_file(
    path: Path | str,
    out_path: Path | str,
    *,
    scrubber: SupportsScrub,
    progress: ProgressFn | None = None,
    fmt: str | None = None,
    text_field: str = "text",
    keep_fields: Sequence[str] = ("label",),
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
    oversize: Literal["chunk", "refuse"] = "chunk",
) -> ScrubFileReport:
    """Scrub a local corpus file into a JSONL file, streaming, and report counts.

    Args:
        path: Input: ``.jsonl`` / ``.csv`` / ``.parquet`` / ``.txt``, optionally ``.gz``.
        out_path: Output JSONL, written to a temporary name and renamed at the end, so a
            failed run leaves no partial output.
        scrubber: A loaded ``ParallelScrubber`` (or ``Scrubber``); build it with
            ``residual_check=True`` for the report's residual count.
        progress: Called every 256 records and at the end with
            ``(records_done, bytes_read, total_bytes)``.
        fmt: Format override (one of :data:`FORMATS`).
        text_field: Column / JSON key of the text.
        keep_fields: Columns copied to the output unchanged (not scrubbed: labels only).
        max_doc_chars: Largest document scrubbed in one piece.
        oversize: ``"chunk"`` scrubs a longer document in pieces (:func:`split_text`) and
            writes it as one record; ``"refuse"`` skips it and lists its line with the limit.

    Returns:
        Counts per entity type and strategy, malformed lines, residual count.

    Raises:
        FileSourceError: The file cannot be read as a corpus at all.
    """
    started = time.perf_counter()
    src, out = Path(path), Path(out_path)
    stats = SourceStats()
    fmt_name = fmt or detect_format(src)[0]
    report = ScrubFileReport(format=fmt_name)
    residual_seen = bool(getattr(scrubber, "residual_check", False))
    entity: Counter[str] = Counter()
    strategy: Counter[str] = Counter()
    residual: Counter[str] = Counter()
    strategies: dict[str, str] = {}
    policy = getattr(scrubber, "policy", None)
    # (record, pieces) in input order; bounded by the scrubber's in-flight chunks.
    meta: deque[tuple[SourceRecord, int]] = deque()

    def texts() -> Iterator[str]:
        for rec in read_records(
            src, stats, fmt=fmt, text_field=text_field, keep_fields=keep_fields
        ):
            pieces = [rec.text]
            if len(rec.text) > max_doc_chars:
                if oversize == "refuse":
                    report.refused_count += 1
                    if len(report.refused) < MAX_LISTED_ISSUES:
                        report.refused.append(
                            LineIssue(rec.line, f"document over the limit of {max_doc_chars} chars")
                        )
                    continue
                pieces = split_text(rec.text, max_doc_chars)
                report.chunked_records += 1
            meta.append((rec, len(pieces)))
            yield from pieces

    tmp = out.with_name(out.name + ".partial")
    try:
        with open(tmp, "w", encoding="utf-8") as fout:
            results = _scrub_stream(scrubber, texts())
            for res in results:
                rec, n = meta.popleft()
                parts = [res] + [next(results) for _ in range(n - 1)]
                text = "".join(p.text for p in parts)
                counts: Counter[str] = Counter()
                for p in parts:
                    counts.update(p.entity_counts)
                    strategy.update(p.strategy_counts)
                    residual.update(p.residual_counts)
                entity.update(counts)
                if counts:
                    report.records_with_pii += 1
                if policy is not None:
                    for e in counts:
                        strategies.setdefault(e, policy.strategy_for(e).name)
                fout.write(json.dumps({"text": text, **rec.fields}, ensure_ascii=False) + "\n")
                report.records_out += 1
                if progress is not None and report.records_out % 256 == 0:
                    progress(report.records_out, stats.bytes_read, stats.total_bytes)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(report.records_out, stats.total_bytes, stats.total_bytes)
    report.records_in = stats.records
    report.entity_counts = dict(sorted(entity.items()))
    report.strategy_counts = dict(sorted(strategy.items()))
    report.strategies = dict(sorted(strategies.items()))
    report.malformed_count = stats.malformed_count
    report.malformed = list(stats.malformed)
    if residual_seen:
        report.residual_count = sum(residual.values())
        report.residual_counts = dict(sorted(residual.items()))
    report.analyzer = scrubber.description
    report.strategy = scrubber.strategy
    report.seconds = round(time.perf_counter() - started, 3)
    return report
