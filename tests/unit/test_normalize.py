"""Detection sees normalised text; spans land on the original characters (issue 12)."""

from __future__ import annotations

import pytest
from privsynth.server.scrubbing.normalize import normalize_for_analysis


def test_ascii_and_normalised_text_are_left_alone() -> None:
    for text in ("John Smith", "Zoë Ångström"):
        norm = normalize_for_analysis(text)
        assert norm.identity and norm.text == text
        assert norm.span(0, 4) == (0, 4)


def test_invisible_characters_are_removed_and_spans_map_back() -> None:
    text = "Call J\u200bo\u200dhn Smith\u202e now"
    norm = normalize_for_analysis(text)
    assert norm.text == "Call John Smith now"
    start = norm.text.index("John Smith")
    a, b = norm.span(start, start + len("John Smith"))
    assert text[a:b] == "J\u200bo\u200dhn Smith"  # the invisible characters inside are covered


def test_nfkc_folds_compatibility_forms() -> None:
    text = "mail ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ ok"
    norm = normalize_for_analysis(text)
    assert norm.text == "mail john@example.com ok"
    start = norm.text.index("john")
    a, b = norm.span(start, start + len("john@example.com"))
    assert text[a:b] == "ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ"
    # One original character folding into several ("ﬁ" -> "fi") maps both to it.
    lig = normalize_for_analysis("ﬁle")
    assert lig.text == "file" and lig.span(0, 1) == (0, 1) and lig.span(1, 2) == (0, 1)


def test_combining_marks_stay_with_their_letter() -> None:
    text = "Rene\u0301 Dupont\u200b"
    norm = normalize_for_analysis(text)
    assert norm.text == "René Dupont"
    assert norm.span(0, len(norm.text)) == (0, len(text) - 1)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u200ba\u200b"])
def test_degenerate_texts(text: str) -> None:
    norm = normalize_for_analysis(text)
    assert norm.span(0, len(norm.text)) in {(0, 0), (1, 2)}
