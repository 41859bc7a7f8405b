"""``privsynth scrub FILE``: scrub a local corpus file with the server's engine, no server.

Runs the same scrubber as uploads (recognizers, strategies from ``conf/scrub.yaml`` or
``--policy``) in two worker processes, streams the file with a progress bar and prints the
report: counts per entity type and strategy, malformed lines by number, residual identifiers.
Never prints any text from the file. E-mail (``.eml``, ``.mbox``) is written back as e-mail,
scrubbed with its structure kept (:mod:`privsynth.server.scrubbing.mail`).

A record left out for its size (too large to read, or over the limit with ``--oversize
refuse``) is listed by line on stderr and makes the command exit with 65 (EX_DATAERR), the
output written without it, unless ``--skip-oversized`` says that is acceptable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from privsynth.client.mailfiles import MAIL_FORMATS
from privsynth.client.progress import ProgressBar
from privsynth.server.scrubbing.file_sources import FileSourceError, detect_format, scrub_file
from privsynth.server.scrubbing.pipeline import ParallelScrubber
from privsynth.server.scrubbing.scrubber import ScrubberConfigError

__all__ = ["EXIT_DATAERR", "run_cli"]

#: Exit status when records were left out for their size (sysexits' EX_DATAERR).
EXIT_DATAERR = 65
_SHOWN = 10


def _default_out(src: Path, fmt: str) -> Path:
    stem = src.name.split(".")[0]
    suffix = f".{fmt}" if fmt in MAIL_FORMATS else ".jsonl"
    return src.with_name(stem + ".scrubbed" + suffix)


def run_cli(args: argparse.Namespace) -> int:
    """Scrub ``args.file`` into ``args.out``; returns a process exit code."""
    src = Path(args.file)
    fmt = getattr(args, "format", None)
    try:
        out_fmt = fmt or detect_format(src)[0]
    except FileSourceError as exc:
        raise SystemExit(f"cannot read {src}: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"cannot read {src}: {exc.strerror or type(exc).__name__}") from None
    out = Path(args.out) if args.out else _default_out(src, out_fmt)
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
        raise SystemExit(f"scrub configuration error: {exc}") from None
    if scrubber.policy.needs_key and key is None:
        raise SystemExit(
            "scrub configuration error: the policy uses 'hash' or 'pseudonym'; give the "
            "file's key with --key-file or PRIVSYNTH_SCRUB_KEY (at least 16 bytes)"
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
            raise SystemExit(f"cannot read {src}: {exc}") from None
    bar.close()
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    print(f"wrote {out}")
    if report.refused_count and not getattr(args, "skip_oversized", False):
        for issue in report.refused[:_SHOWN]:
            print(f"{src}:{issue.line}: {issue.reason}", file=sys.stderr)
        if report.refused_count > _SHOWN:
            print(f"... and {report.refused_count - _SHOWN} more", file=sys.stderr)
        print(
            f"{report.refused_count} record(s) over the size limit were not scrubbed and are "
            f"not in {out}; pass --skip-oversized to accept that",
            file=sys.stderr,
        )
        return EXIT_DATAERR
    return 0
