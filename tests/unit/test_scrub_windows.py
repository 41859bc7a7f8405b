"""Long texts are analysed in overlapping windows, in spaCy batches bounded in characters.

Issue 12: 64 records of 64 KB in one spaCy batch grew a scrub worker from 0.5 GB to 4.2 GB.
Values are synthetic.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from corpus import long_text
from privsynth.server.scrubbing.scrubber import Scrubber, windows

#: Structured identifiers found by patterns: the same with or without windows.
PLANTED = [
    "zebulon.quagmire@example.org",
    "(415) 555-0134",
    "536-22-8726",
    "4111 1111 1111 1111",
]

#: Context words some recognizers need to score above the threshold.
CONTEXT = {"536-22-8726": "SSN ", "4111 1111 1111 1111": "card "}


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    s = Scrubber(window_chars=600, window_overlap=200, batch_chars=2000)
    s.load()
    return s


def test_windows_cover_the_text_and_own_each_position_once() -> None:
    text = "lorem ipsum dolor " * 2000
    ws = windows(text, 8192, 800)
    assert len(ws) > 1
    assert ws[0].start == ws[0].own_start == 0
    assert ws[-1].end == ws[-1].own_end == len(text)
    for a, b in itertools.pairwise(ws):
        assert a.own_end == b.own_start
        assert b.start + 200 <= a.own_end <= a.end - 200  # context on both sides
        assert a.end - a.start <= 8192
        assert text[a.end - 1].isspace()  # cut after whitespace
    assert windows("short", 8192, 800) == [windows("short", 8192, 800)[0]]
    assert len(windows("x" * 20_000, 8192, 800)) == 3  # no whitespace: cut anywhere


def _planted_texts() -> list[tuple[str, tuple[int, int]]]:
    """Texts with one value planted at every offset around the first window's edges."""
    filler = "the weather was fine and nothing else happened that day " * 40
    out = []
    for value in PLANTED:
        for at in range(360, 620, 6):  # across the owned part's end (~400) and the cut (~600)
            prefix = filler[:at] + CONTEXT.get(value, "")
            text = prefix + value + " " + filler
            out.append((text, (len(prefix), len(prefix) + len(value))))
    return out


def test_pii_on_window_boundaries_is_found_once(scrubber: Scrubber) -> None:
    planted = _planted_texts()
    texts = [t for t, _ in planted]
    straddling = 0
    for text, (s, e) in planted:
        edges = {x for w in windows(text, 600, 200)[:-1] for x in (w.end, w.own_end)}
        straddling += any(s < x < e for x in edges)
    assert straddling >= 10  # values do lie across cuts and across owned parts' ends
    found = scrubber.analyze_batch(texts)
    whole = Scrubber(window_chars=100_000, window_overlap=0)
    whole.load()
    expected = whole.analyze_batch(texts)
    structured = {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IP_ADDRESS"}

    def key(results: list[Any]) -> list[tuple[str, int, int]]:
        return sorted(
            (r.entity_type, r.start, r.end) for r in results if r.entity_type in structured
        )

    for (text, (s, e)), got, want in zip(planted, found, expected, strict=True):
        assert key(got) == key(want)  # nothing missed, nothing twice
        assert any(r.start <= s and e <= r.end for r in got), text[s:e]
    scrubbed = scrubber.scrub_batch(texts)
    assert not any(text[s:e] in r.text for (text, (s, e)), r in zip(planted, scrubbed, strict=True))


def test_spacy_batches_are_bounded_in_characters(scrubber: Scrubber) -> None:
    engine = scrubber._analyzer.nlp_engine
    seen: list[int] = []
    original = engine.process_batch

    def spy(texts: Any, *args: Any, **kwargs: Any) -> Any:
        texts = list(texts)
        seen.append(sum(len(t) for t in texts))
        return original(texts, *args, **kwargs)

    engine.process_batch = spy
    try:
        big = Scrubber(analyzer=scrubber._analyzer)
        results = big.scrub_batch([long_text(i, 16 * 1024) for i in range(8)])
    finally:
        engine.process_batch = original
    assert len(results) == 8
    assert seen and max(seen) <= 64 * 1024
    assert all("zebulon.quagmire@example.org" not in r.text for r in results)
