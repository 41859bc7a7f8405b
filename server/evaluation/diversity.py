"""Diversity: does the generator say many different things, or one thing many times?

Computed on the synthetic records alone (no private data): distinct-n (Li et al. 2016), the
share of n-grams that are unique across the corpus; self-BLEU (Zhu et al. 2018, Texygen), the
mean BLEU-4 of each record against all the others, where 1 means every record repeats the
rest; and the rates of exact duplicates (same words) and near duplicates (word 3-shingle
Jaccard similarity at least :data:`NEAR_DUPLICATE_JACCARD` with another record).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from privsynth.server.evaluation.text import ngrams, normalise, words

__all__ = [
    "NEAR_DUPLICATE_JACCARD",
    "Diversity",
    "distinct_n",
    "diversity",
    "duplicate_rates",
    "self_bleu",
]

NEAR_DUPLICATE_JACCARD = 0.8
SELF_BLEU_RECORDS = 300
"""Self-BLEU compares every pair: it is computed on a random subset of this many records."""


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams in the corpus (0 when there are none)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(ngrams(words(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def _sentence_bleu(
    hypothesis: list[str],
    reference_count: Callable[[tuple[str, ...]], int],
    ref_lengths: Sequence[int],
) -> float:
    """BLEU-4 of one tokenised hypothesis; ``reference_count`` is an n-gram's clip count.

    The clip count is the n-gram's largest count in any one reference. Orders above 1 with no
    match are smoothed by adding 1 to numerator and denominator (Lin & Och's smoothing), so that
    a short record is not scored 0 for lacking a 4-gram.
    """
    if not hypothesis:
        return 0.0
    log_precision = 0.0
    for order in range(1, 5):
        grams = Counter(ngrams(hypothesis, order))
        total = sum(grams.values())
        clipped = sum(min(c, reference_count(g)) for g, c in grams.items())
        if order == 1:
            if clipped == 0:
                return 0.0
            log_precision += math.log(clipped / total)
        else:
            log_precision += math.log((clipped + 1) / (total + 1))
    closest = min(ref_lengths, key=lambda r: (abs(r - len(hypothesis)), r))
    brevity = 1.0 if len(hypothesis) > closest else math.exp(1 - closest / len(hypothesis))
    return brevity * math.exp(log_precision / 4)


def self_bleu(texts: Sequence[str], *, limit: int = SELF_BLEU_RECORDS, seed: int = 0) -> float:
    """Mean BLEU-4 of each record against all the others (of a random subset of ``limit``).

    1 when all records are the same; near 0 when no two share a word. Needs two records.
    Each n-gram's two largest per-record counts (and the owner of the largest) are kept, so
    the clip count "largest count in any *other* record" costs one look-up.
    """
    pool = list(texts)
    if len(pool) > limit:
        pool = random.Random(seed).sample(pool, limit)
    tokens = [words(t) for t in pool]
    if len(tokens) < 2:
        return 0.0
    top: dict[tuple[str, ...], tuple[int, int, int]] = {}  # gram -> (max, owner, second)
    for i, toks in enumerate(tokens):
        for order in range(1, 5):
            for gram, count in Counter(ngrams(toks, order)).items():
                best, owner, second = top.get(gram, (0, -1, 0))
                if count > best:
                    top[gram] = (count, i, best)
                else:
                    top[gram] = (best, owner, max(second, count))
    lengths = [len(t) for t in tokens]
    scores = []
    for i, hyp in enumerate(tokens):

        def clip(gram: tuple[str, ...], i: int = i) -> int:
            best, owner, second = top.get(gram, (0, -1, 0))
            return second if owner == i else best

        others = lengths[:i] + lengths[i + 1 :]
        scores.append(_sentence_bleu(hyp, clip, others))
    return math.fsum(scores) / len(scores)


def _shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    toks = words(text)
    if len(toks) < size:
        return frozenset({tuple(toks)}) if toks else frozenset()
    return frozenset(ngrams(toks, size))


def duplicate_rates(
    texts: Sequence[str], *, threshold: float = NEAR_DUPLICATE_JACCARD
) -> tuple[float, float]:
    """Share of records that repeat an earlier one exactly, and share with a near duplicate.

    An exact duplicate has the same words as an earlier record (case and punctuation aside);
    its first occurrence does not count. A near duplicate is a record whose word 3-shingles
    have Jaccard similarity ≥ ``threshold`` with some other record (exact ones included).
    Candidate pairs come from an inverted index of shingles, so only records sharing a
    shingle are compared.
    """
    if not texts:
        return 0.0, 0.0
    seen: set[str] = set()
    exact = 0
    for text in texts:
        key = normalise(text)
        if key in seen:
            exact += 1
        seen.add(key)
    shingles = [_shingles(t) for t in texts]
    index: dict[tuple[str, ...], list[int]] = {}
    for i, sh in enumerate(shingles):
        for s in sh:
            index.setdefault(s, []).append(i)
    near: set[int] = set()
    for i, sh in enumerate(shingles):
        if not sh or i in near:
            continue
        candidates = {j for s in sh for j in index[s] if j != i}
        for j in candidates:
            other = shingles[j]
            if len(sh & other) / len(sh | other) >= threshold:
                near.update((i, j))
                break
    return exact / len(texts), len(near) / len(texts)


@dataclass(frozen=True)
class Diversity:
    """The diversity section: synthetic records only."""

    distinct_1: float
    distinct_2: float
    self_bleu: float
    exact_duplicate_rate: float
    near_duplicate_rate: float


def diversity(texts: Sequence[str]) -> Diversity:
    """All diversity measures of one corpus."""
    exact, near = duplicate_rates(texts)
    return Diversity(
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        self_bleu=self_bleu(texts),
        exact_duplicate_rate=exact,
        near_duplicate_rate=near,
    )
