"""Words and n-grams: the one tokenisation every text metric of the report shares.

Lower-cased word tokens (letters, digits, inner apostrophes) make the metrics comparable across
generators with different tokenizers: a sub-word vocabulary must not decide what counts as a
repeated phrase or a distinct word. Punctuation is dropped, so "end." and "end" are one word.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["Record", "ngram_counts", "ngrams", "normalise", "words"]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``."""
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    """``text`` as its words joined by single spaces: what an exact duplicate shares."""
    return " ".join(words(text))


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The ``n``-grams of ``tokens`` in order (none when there are fewer than ``n`` tokens)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_counts(texts: Iterable[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each word ``n``-gram occurs across ``texts`` (within records, never across)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(ngrams(words(text), n))
    return counts


class Record(NamedTuple):
    """One record as the report sees it: its text and label (None when unlabelled)."""

    text: str
    label: str | None = None
