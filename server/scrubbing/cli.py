"""``privsynth scrub FILE``: scrub a local corpus file with the server's engine, no server.

Runs the same scrubber as uploads (recognizers, strategies from ``conf/scrub.yaml`` or
``--policy``) in two worker processes, streams the file with a progress bar and prints the
report: counts per entity type and strategy, malformed lines by number, residual identifiers.
Never prints any text from the file.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from privsynth.client.progress import ProgressBar
from privsynth.server.scrubbing.file_sources import FileSourceError, scrub_file
from privsynth.server.scrubbing.pipeline import ParallelScrubber
from privsynth.server.scrubbing.scrubber import ScrubberConfigError

__all__ = ["run_cli"]


def run_cli(args: argparse.Namespace) -> int:
    """Scrub ``args.file`` into ``args.out``; returns a process exit code."""
    src = Path(args.file)
    out = Path(args.out) if args.out else src.with_name(src.name.split(".")[0] + ".scrubbed.jsonl")
    key = None
    if args.key_file:
        key = Path(args.key_file).read_bytes().strip()
    elif os.environ.get("PRIVSYNTH_SCRUB_KEY"):
        key = os.environ["PRIVSYNTH_SCRUB_KEY"].encode()
    try:
        scrubber = ParallelScrubber(
            workers=args.workers,
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
                text_field=args.text_field,
                oversize=args.oversize,
            )
        except FileSourceError as exc:
            raise SystemExit(f"cannot read {src}: {exc}") from None
    bar.close()
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    print(f"wrote {out}")
    return 0
