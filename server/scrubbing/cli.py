"""``privsynth scrub FILE``: scrub a local corpus file with the server's engine, no server.

Runs the same scrubber as uploads (recognizers, strategies from ``conf/scrub.yaml`` or
``--policy``) in two worker processes, streams the file with a progress bar and prints the
report: counts per entity type and strategy, malformed lines by number, residual identifiers.
Never prints any text from the file. E-mail (``.eml``, ``.mbox``) is written back as e-mail,
scrubbed with its structure kept (:mod:`privsynth.server.scrubbing.mail`).

A record left out (malformed, too large to read, or over the limit with ``--oversize
refuse``) is listed by line on stderr and makes the command exit with 65 (EX_DATAERR), the
output written without it, unless ``--skip-malformed`` / ``--skip-oversized`` says that is
acceptable: a scrubbed copy shorter than its source is never a silent success. A missing or
unreadable input exits 66 (EX_NOINPUT), a file of the wrong format 65, a bad option 2, and the
output never replaces the input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from privsynth.client.mailfiles import MAIL_FORMATS
from privsynth.client.progress import ProgressBar
from privsynth.server.scrubbing.file_sources import (
    FileSourceError,
    LineIssue,
    detect_format,
    scrub_file,
)
from privsynth.server.scrubbing.pipeline import ParallelScrubber
from privsynth.server.scrubbing.scrubber import ScrubberConfigError

__all__ = ["EXIT_DATAERR", "run_cli"]

#: Exit status when records were left out, or the file is not of its format (EX_DATAERR).
EXIT_DATAERR = 65
#: Exit status when the input cannot be read (sysexits' EX_NOINPUT).
EXIT_NOINPUT = 66
#: Exit status for options that cannot work together (argparse's own).
EXIT_USAGE = 2
_SHOWN = 10


def _default_out(src: Path, fmt: str) -> Path:
    """``NAME.scrubbed.jsonl`` beside the input, NAME being all but the format's suffixes.

    Only ``.gz`` and the last suffix go: ``tickets.2024.jsonl`` and ``tickets.2025.jsonl``
    must not both write ``tickets.scrubbed.jsonl``.
    """
    name = src.name.removesuffix(".gz").removesuffix(".GZ")
    stem = Path(name).stem if Path(name).suffix else name
    suffix = f".{fmt}" if fmt in MAIL_FORMATS else ".jsonl"
    return src.with_name(stem + ".scrubbed" + suffix)


class _Refused(Exception):
    """The run cannot start or finish as asked: the message for stderr and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def run_cli(args: argparse.Namespace) -> int:
    """Scrub ``args.file`` into ``args.out``; returns a process exit code."""
    try:
        return _run(args)
    except _Refused as exc:
        print(f"privsynth scrub: error: {exc}", file=sys.stderr)
        return exc.code


def _run(args: argparse.Namespace) -> int:
    src = Path(args.file)
    fmt = getattr(args, "format", None)
    if not src.exists():
        raise _Refused(f"cannot read {src}: no such file", EXIT_NOINPUT)
    if src.is_dir():
        raise _Refused(f"cannot read {src}: it is a directory", EXIT_NOINPUT)
    try:
        out_fmt = fmt or detect_format(src)[0]
    except FileSourceError as exc:
        raise _Refused(f"cannot read {src}: {exc}", EXIT_DATAERR) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Refused(f"cannot read {src}: {reason}", EXIT_NOINPUT) from None
    out = Path(args.out) if args.out else _default_out(src, out_fmt)
    if _same_file(src, out):
        raise _Refused(f"--out {out} is the input file: choose another output", EXIT_USAGE)
    if args.workers < 1:
        raise _Refused("--workers must be at least 1", EXIT_USAGE)
    key = None
    if args.key_file:
        key = Path(args.key_file).read_bytes().strip()
    elif os.environ.get("PRIVSYNTH_SCRUB_KEY"):
        key = os.environ["PRIVSYNTH_SCRUB_KEY"].encode()
    try:
        scrubber = ParallelScrubber(
            workers=args.workers,
            reserved=0,  # no interactive calls here: every worker scrubs the file
            residual_check=True,
            policy=Path(args.policy) if args.policy else None,
            key=key,
        )
    except ScrubberConfigError as exc:
        raise _Refused(f"scrub configuration error: {exc}", EXIT_USAGE) from None
    if scrubber.policy.needs_key and key is None:
        raise _Refused(
            "scrub configuration error: the policy uses 'hash' or 'pseudonym'; give the "
            "file's key with --key-file or PRIVSYNTH_SCRUB_KEY (at least 16 bytes)",
            EXIT_USAGE,
        )
    bar = ProgressBar("scrubbing", total=100)
    with scrubber:
        try:
            report = scrub_file(
                src,
                out,
                scrubber=scrubber,
                progress=lambda done, read, total: bar.update(
                    int(100 * read / total) if total else 0, suffix=f"{done} records"
                ),
                fmt=fmt,
                text_field=args.text_field,
                oversize=args.oversize,
                key=key,
            )
        except FileSourceError as exc:
            raise _Refused(f"cannot read {src}: {exc}", EXIT_DATAERR) from None
    bar.close()
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    print(f"wrote {out}")
    code = 0
    if report.malformed_count and not getattr(args, "skip_malformed", False):
        _list_left_out(src, report.malformed, report.malformed_count)
        print(
            f"{report.malformed_count} malformed record(s) are not in {out}; fix them, or "
            "pass --skip-malformed to accept that",
            file=sys.stderr,
        )
        code = EXIT_DATAERR
    if report.refused_count and not getattr(args, "skip_oversized", False):
        _list_left_out(src, report.refused, report.refused_count)
        print(
            f"{report.refused_count} record(s) over the size limit were not scrubbed and are "
            f"not in {out}; pass --skip-oversized to accept that",
            file=sys.stderr,
        )
        code = EXIT_DATAERR
    return code


def _list_left_out(src: Path, issues: Sequence[LineIssue], count: int) -> None:
    for issue in issues[:_SHOWN]:
        print(f"{src}:{issue.line}: {issue.reason}", file=sys.stderr)
    if count > _SHOWN:
        print(f"... and {count - _SHOWN} more", file=sys.stderr)
