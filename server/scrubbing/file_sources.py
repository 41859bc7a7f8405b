"""Stream local corpus files (JSONL, CSV, Parquet, text, e-mail; optionally gzip) through scrubbing.

The readers live in :mod:`privsynth.client.sources` (``privsynth upload`` reads files with the
same code) and are re-exported here. Everything is an iterator: a file is read one line (or
one Parquet row batch) at a time and scrubbed in bounded chunks by
:class:`~privsynth.server.scrubbing.pipeline.ParallelScrubber`, so a corpus of any size runs in
constant memory. Bad input never stops a run and never reaches a
message: a malformed JSONL or CSV line is counted and reported by line number and reason only
("not valid JSON"), and a document over the size limit is split into pieces at whitespace and
scrubbed piece by piece (or, with ``oversize="refuse"``, reported by line number with the
limit). A record too large to read at all (a line over 16 MiB, a message over 16 MiB) is
skipped and listed with the refused ones, by line number: ``privsynth scrub`` then exits
non-zero unless told to skip such records.

:func:`scrub_file` writes scrubbed records as JSONL (``{"text": ..., "label": ...}``: only the
text and the ``keep_fields`` columns; other columns, such as user ids, are dropped because they
are not scrubbed) and returns a :class:`ScrubFileReport` of counts, never values. E-mail
(``.eml``, ``.mbox``) is written back as e-mail instead, with its structure kept
(:func:`~privsynth.server.scrubbing.mail.scrub_mail_file`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from privsynth.client.mailfiles import MAIL_FORMATS
from privsynth.client.sources import (
    FORMATS,
    MAX_LISTED_ISSUES,
    FileSourceError,
    LineIssue,
    SourceRecord,
    SourceStats,
    detect_format,
    read_records,
)
from privsynth.server.scrubbing.scrubber import ScrubResult

__all__ = [
    "FORMATS",
    "FileSourceError",
    "LineIssue",
    "ReportTally",
    "ScrubFileReport",
    "SourceRecord",
    "SourceStats",
    "atomic_output",
    "detect_format",
    "read_records",
    "scrub_file",
    "scrub_stream",
    "split_text",
]

#: Default largest document scrubbed in one piece (characters); matches the upload limit.
DEFAULT_MAX_DOC_CHARS = 65_536


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
        refused_count: Documents not scrubbed for their size: over the limit with
            ``oversize="refuse"``, or too large to be read at all.
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


def scrub_stream(scrubber: SupportsScrub, texts: Iterable[str]) -> Iterator[ScrubResult]:
    """Scrub a stream of texts in order, in bounded chunks (``scrub_iter`` when there is one)."""
    scrub_iter = getattr(scrubber, "scrub_iter", None)
    if scrub_iter is not None:
        yield from scrub_iter(texts)
        return
    it = iter(texts)
    while chunk := [t for _, t in zip(range(64), it, strict=False)]:
        yield from scrubber.scrub_batch(chunk)


@contextmanager
def atomic_output(out: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Write ``out`` through a temporary sibling, renamed at the end or removed on failure.

    A failed or interrupted run therefore never leaves a partial output under the real name.
    """
    tmp = out.with_name(out.name + ".partial")
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ReportTally:
    """Counts gathered while a file is scrubbed, written into its report at the end."""

    def __init__(self, scrubber: SupportsScrub) -> None:
        self.scrubber = scrubber
        self.entity: Counter[str] = Counter()
        self.strategy: Counter[str] = Counter()
        self.residual: Counter[str] = Counter()
        self.started = time.perf_counter()

    def add(self, result: ScrubResult) -> None:
        """Count one scrubbed text (or one piece of it)."""
        self.entity.update(result.entity_counts)
        self.strategy.update(result.strategy_counts)
        self.residual.update(result.residual_counts)

    def finish(self, report: ScrubFileReport, stats: SourceStats) -> ScrubFileReport:
        """Fill in ``report`` from the counts and the reader's ``stats``."""
        policy = getattr(self.scrubber, "policy", None)
        report.records_in = stats.records
        report.entity_counts = dict(sorted(self.entity.items()))
        report.strategy_counts = dict(sorted(self.strategy.items()))
        if policy is not None:
            report.strategies = {e: policy.strategy_for(e).name for e in report.entity_counts}
        report.malformed_count = stats.malformed_count
        report.malformed = list(stats.malformed)
        report.refused_count += stats.oversized_count
        report.refused = sorted([*report.refused, *stats.oversized], key=lambda i: i.line)[
            :MAX_LISTED_ISSUES
        ]
        if getattr(self.scrubber, "residual_check", False):
            report.residual_count = sum(self.residual.values())
            report.residual_counts = dict(sorted(self.residual.items()))
        report.analyzer = self.scrubber.description
        report.strategy = self.scrubber.strategy
        report.seconds = round(time.perf_counter() - self.started, 3)
        return report


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
    key: bytes | None = None,
) -> ScrubFileReport:
    """Scrub a local corpus file into a JSONL file, streaming, and report counts.

    Args:
        path: Input: ``.jsonl`` / ``.csv`` / ``.parquet`` / ``.txt`` / ``.eml`` / ``.mbox``,
            optionally ``.gz``.
        out_path: Output JSONL (for e-mail: the same format as the input), written to a
            temporary name and renamed at the end, so a failed run leaves no partial output.
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
        key: The key ``scrubber`` was built with, if its policy is keyed: e-mail header values
            replaced without the analyzer then get the same pseudonyms as in the bodies.

    Returns:
        Counts per entity type and strategy, malformed lines, residual count.

    Raises:
        FileSourceError: The file cannot be read as a corpus at all.
    """
    src, out = Path(path), Path(out_path)
    fmt_name = fmt or detect_format(src)[0]
    if fmt_name in MAIL_FORMATS:
        from privsynth.server.scrubbing.mail import scrub_mail_file

        return scrub_mail_file(
            src,
            out,
            scrubber=scrubber,
            key=key,
            progress=progress,
            fmt=fmt,
            max_doc_chars=max_doc_chars,
            oversize=oversize,
        )
    tally = ReportTally(scrubber)
    stats = SourceStats()
    report = ScrubFileReport(format=fmt_name)
    # (record, pieces) in input order; bounded by the scrubber's in-flight chunks.
    meta: deque[tuple[SourceRecord, int]] = deque()

    def texts() -> Iterator[str]:
        for rec in read_records(
            src, stats, fmt=fmt, text_field=text_field, keep_fields=keep_fields, raw_fields=True
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

    with atomic_output(out) as fout:
        results = scrub_stream(scrubber, texts())
        for res in results:
            rec, n = meta.popleft()
            parts = [res] + [next(results) for _ in range(n - 1)]
            for p in parts:
                tally.add(p)
            report.records_with_pii += any(p.entity_counts for p in parts)
            text = "".join(p.text for p in parts)
            fout.write(json.dumps({"text": text, **rec.fields}, ensure_ascii=False) + "\n")
            report.records_out += 1
            if progress is not None and report.records_out % 256 == 0:
                progress(report.records_out, stats.bytes_read, stats.total_bytes)
    if progress is not None:
        progress(report.records_out, stats.total_bytes, stats.total_bytes)
    return tally.finish(report, stats)
