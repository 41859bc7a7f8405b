"""Stream local corpus files (JSONL, CSV, Parquet, plain text; optionally gzip) through scrubbing.

The readers live in :mod:`privsynth.client.sources` (``privsynth upload`` reads files with the
same code) and are re-exported here. Everything is an iterator: a file is read one line (or
one Parquet row batch) at a time and scrubbed in bounded chunks by
:class:`~privsynth.server.scrubbing.pipeline.ParallelScrubber`, so a corpus of any size runs in
constant memory. Bad input never stops a run and never reaches a
message: a malformed JSONL or CSV line is counted and reported by line number and reason only
("not valid JSON"), and a document over the size limit is split into pieces at whitespace and
scrubbed piece by piece (or, with ``oversize="refuse"``, reported by line number with the
limit).

:func:`scrub_file` writes scrubbed records as JSONL (``{"text": ..., "label": ...}``: only the
text and the ``keep_fields`` columns; other columns, such as user ids, are dropped because they
are not scrubbed) and returns a :class:`ScrubFileReport` of counts, never values.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

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
    "ScrubFileReport",
    "SourceRecord",
    "SourceStats",
    "detect_format",
    "read_records",
    "scrub_file",
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
