"""Keep any one word out of most of a label's records: the guided decoding's shortcut guard.

A guided decoding writes its label's nearest words into nearly every record ("art" in 93% of
the art records, "linux" in 99%), where the real records of that label rarely hold them (in
fortunes, a content word seldom stands in more than a third of a label's records). A
classifier trained on such records leans on those few words alone and fails on real text
that lacks them: on fortunes at ε = 8, adding each label's three most likely words to every
record of a bag-of-words sample dropped the utility it keeps from 0.71 to 0.51
(benchmarks/README.md, guided recipe).

:class:`WordCap` drops, from each record as it is written, every word that already stands in
``share`` of the records written so far for the same request (one label's records, as
:func:`privsynth.models.sampling.sample` draws them): no word ends up in more than about that
share of them, function words included, since a label's records that all say "is" teach the
classifier that too. It reads only records already sampled from a DP release, so it is
post-processing and costs no privacy; it needs no data and no state beyond one request.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["WordCap"]

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# Separators a dropped word leaves doubled: "melancholic, , dialogue", "art  world".
_SPACE_BEFORE_MARK = re.compile(r"[ \t]+([,.;:!?])")
_REPEATED_MARK = re.compile(r"([,;:])(?:[ \t]*[,;:])+")
_MARK_BEFORE_STOP = re.compile(r"[,;:]+[ \t]*(?=[.!?])")
_BLANKS = re.compile(r"[ \t]{2,}")


class WordCap:
    """Drop words that already stand in ``share`` of the records written so far.

    A record may keep a word while the number of earlier records holding it is below
    ``share`` times the records written so far, this one included: with ``share`` 0.2 a word
    is kept in the first record, dropped from the next four, kept again in the sixth, and so
    on. Words compare case-insensitively; only the words a record keeps count for it. A
    record that would lose every word is kept whole (and counted), so no request yields
    empty text.

    Args:
        share: The largest share of records a word may stand in, in (0, 1]; 1 keeps
            everything.

    Raises:
        ValueError: ``share`` is not in (0, 1].
    """

    def __init__(self, share: float) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"word cap share must be in (0, 1], got {share}")
        self.share = share
        self._records = 0
        self._holding: Counter[str] = Counter()

    def apply(self, text: str) -> str:
        """``text`` without the words that have used up their share; counts what it keeps."""
        words = {w.casefold() for w in _WORD.findall(text)}
        limit = self.share * (self._records + 1)
        spent = {w for w in words if self._holding[w] >= limit}
        self._records += 1
        if spent == words:
            spent = set()
        self._holding.update(words - spent)
        if not spent:
            return text
        kept = _WORD.sub(lambda m: "" if m.group(0).casefold() in spent else m.group(0), text)
        kept = _SPACE_BEFORE_MARK.sub(r"\1", kept)
        kept = _REPEATED_MARK.sub(r"\1", kept)
        kept = _MARK_BEFORE_STOP.sub("", kept)
        kept = _BLANKS.sub(" ", kept)
        return kept.lstrip(" \t,;:.").rstrip(" \t,;:")
