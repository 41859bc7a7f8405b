"""Scrub cost of adversarial text, as a ratio to ordinary prose of the same length.

A scrub call (AnalyzeText, ScrubText, an upload's records) costs what its text costs the
analyzer. Regular expressions that backtrack over a long run of word characters cost the
square of the run, and so does work done per result for every token: 64 KB of "Ab-Ab-Ab-..."
once took 50 s where 64 KB of prose took 2.3 s, and four such calls from one member held every
scrub worker for a minute. This script analyses a whole record (64 KB by default, in the
scrubber's windows, as a call does) of each input below and of public-domain prose, and prints
each input's time as a ratio to the prose's; it also times every recognizer (and the spaCy
pipeline) on one window of each, to name the slowest part.

Run: ``.venv/bin/python benchmarks/pathological_text.py [--chars 65000] [--repeat 1]``.
The inputs are repetitions of short units chosen for the character classes the patterns
use (letters, capitals, hyphens, digits, spaces, parentheses, dots, '@', newlines, other
scripts). A ratio near 1 (or below) means the input costs what prose costs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

from privsynth.server.scrubbing.scrubber import DEFAULT_WINDOW_CHARS, Scrubber

UNITS = (
    "Ab-",
    "Ab ",
    "AB",
    "a-",
    "Ab'",
    "Ab.",
    "(1) ",
    "12 ",
    "1-",
    "1.",
    "1 ",
    "12-34 ",
    "+1 ",
    "Ab\n",
    "a@",
    "a.b",
    "Ab1 ",
    "Aаб丁目号1 ",
    "Straße ",
    "rue ",
    "1 Ab ",
    "Ab, ",
    "St ",
    "x",
    " ",
)
_PROSE = Path(__file__).resolve().parent.parent / "server" / "assets" / "demo_fortunes.jsonl"


def _prose(chars: int) -> str:
    """Public-domain prose (the demo's fortunes), ``chars`` long."""
    texts: list[str] = []
    total = 0
    opener: Any = gzip.open if _PROSE.suffix == ".gz" else open
    with opener(_PROSE, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            texts.append(text)
            total += len(text) + 1
            if total >= chars:
                break
    return "\n".join(texts)[:chars]


def _time(scrubber: Scrubber, text: str, repeat: int) -> tuple[float, dict[str, float]]:
    """Seconds of the spaCy pipeline plus every recognizer on ``text``, and the slowest parts."""
    engine = scrubber._analyzer  # the analyzer's parts, timed one by one
    recognizers = engine.registry.get_recognizers(language="en", all_fields=True)
    parts: dict[str, float] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        artifacts = engine.nlp_engine.process_text(text, "en")
        parts["spacy"] = parts.get("spacy", 0.0) + time.perf_counter() - start
        for recognizer in recognizers:
            start = time.perf_counter()
            recognizer.analyze(text, recognizer.supported_entities, artifacts)
            name = recognizer.name
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
    return sum(parts.values()) / repeat, {k: v / repeat for k, v in parts.items()}


def _whole(scrubber: Scrubber, text: str, repeat: int) -> float:
    """Seconds to analyse ``text`` as one record, as a scrub call does (windows, refinement)."""
    start = time.perf_counter()
    for _ in range(repeat):
        scrubber.analyze_batch([text])
    return (time.perf_counter() - start) / repeat


def _repeated(unit: str, chars: int) -> str:
    return (unit * (chars // len(unit) + 1))[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=65_000, help="record length")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    scrubber = Scrubber()
    scrubber.load()
    scrubber.analyze_batch(["warm-up: John Smith, 12 Main Street"])
    window = DEFAULT_WINDOW_CHARS
    base = _whole(scrubber, _prose(args.chars), args.repeat)
    base_window, _ = _time(scrubber, _prose(window), args.repeat)
    print(
        f"record {args.chars} chars; prose (baseline): {base:.2f} s ({base_window:.2f} s a window)"
    )
    print(f"{'input':<14} {'seconds':>8} {'ratio':>6}  slowest part of a {window}-char window")
    worst = 0.0
    for unit in UNITS:
        seconds = _whole(scrubber, _repeated(unit, args.chars), args.repeat)
        _, parts = _time(scrubber, _repeated(unit, window), args.repeat)
        name, part = max(parts.items(), key=lambda kv: kv[1])
        worst = max(worst, seconds / base)
        print(f"{unit!r:<14} {seconds:8.2f} {seconds / base:6.2f}  {name} {part:.3f} s")
    print(f"worst ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
