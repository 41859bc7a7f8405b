"""Detection sees normalised text; spans land on the original characters (issue 12)."""

from __future__ import annotations

import pytest
from privsynth.server.scrubbing.normalize import normalize_for_analysis


def _original(text: str, piece: str) -> str:
    """The original characters behind ``piece`` of ``text``'s normalised copy."""
    norm = normalize_for_analysis(text)
    start = norm.text.index(piece)
    a, b = norm.span(start, start + len(piece))
    return text[a:b]


def test_ascii_and_normalised_text_are_left_alone() -> None:
    for text in ("John Smith", "Zoë Ångström"):
        norm = normalize_for_analysis(text)
        assert norm.identity and norm.text == text
        assert norm.span(0, 4) == (0, 4)


def test_invisible_characters_are_removed_and_spans_map_back() -> None:
    text = "Call J\u200bo\u200dhn Smith\u202e now"
    norm = normalize_for_analysis(text)
    assert norm.text == "Call John Smith now"
    assert _original(text, "John Smith") == "J\u200bo\u200dhn Smith"  # invisible ones covered


def test_nfkc_folds_compatibility_forms() -> None:
    text = "mail ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ ok"
    norm = normalize_for_analysis(text)
    assert norm.text == "mail john@example.com ok"
    assert _original(text, "john@example.com") == "ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ"
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


def test_the_single_slash_mnemonic_in_a_capitalised_name() -> None:
    assert normalize_for_analysis("DK-1615 Ko/benhavn V").text == "DK-1615 København V"
    assert normalize_for_analysis("Bo/rge Mo/ller").text == "Børge Møller"


def test_posix_character_symbols_and_the_o_slash_mnemonic_are_decoded() -> None:
    text = "Sankt J<U00F8>rgens Alle 8, DK-1615 Ko//benhavn V"
    norm = normalize_for_analysis(text)
    assert norm.text == "Sankt Jørgens Alle 8, DK-1615 København V"
    assert _original(text, "Jørgens") == "J<U00F8>rgens"  # the whole escape is covered
    assert _original(text, "København") == "Ko//benhavn"


@pytest.mark.parametrize(
    "text",
    [
        "see http://example.org/a//b",
        "x <U0000> y",
        "a <UD800> b",
        "route 10//20",
        "Go// on",
        "to/from and I/O",
        "Bolzano/Bozen",
        "Go/no",
    ],
)
def test_what_is_not_a_character_escape_stays(text: str) -> None:
    norm = normalize_for_analysis(text)
    assert norm.text == text
