"""The labelled fortunes corpus used by the benchmarks (bundled copy, no ../shared at run time)."""

from __future__ import annotations

import json
from importlib import resources


def load_rows() -> list[dict[str, str]]:
    """All bundled fortunes rows: ``text`` and ``label``."""
    ref = resources.files("privsynth.server") / "assets" / "demo_fortunes.jsonl"
    with ref.open("r", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_texts() -> list[str]:
    """Texts only."""
    return [r["text"] for r in load_rows()]
