"""Fidelity: do the synthetic records look like the training records, word for word?

Three views that need no model: record lengths (in words), the Jensen–Shannon divergence of the
unigram and bigram distributions, and the label mix. The embedding distances (MAUVE, Fréchet)
live in :mod:`privsynth.server.evaluation.distances`. Every function takes plain
texts, so the same code compares synthetic data with training records or with the holdout.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from privsynth.server.evaluation.text import ngram_counts, words

__all__ = [
    "LabelMix",
    "LengthSummary",
    "histogram",
    "js_divergence",
    "ks_statistic",
    "label_mix",
    "length_summary",
    "ngram_js",
]


@dataclass(frozen=True)
class LengthSummary:
    """Record lengths in words."""

    count: int
    mean: float
    median: float
    p10: float
    p90: float


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def lengths(texts: Sequence[str]) -> list[int]:
    """Each text's length in words."""
    return [len(words(t)) for t in texts]


def length_summary(values: Sequence[int]) -> LengthSummary:
    """Count, mean, median and the 10th and 90th percentiles of ``values``."""
    ordered = sorted(float(v) for v in values)
    mean = math.fsum(ordered) / len(ordered) if ordered else 0.0
    return LengthSummary(
        count=len(ordered),
        mean=mean,
        median=_quantile(ordered, 0.5),
        p10=_quantile(ordered, 0.1),
        p90=_quantile(ordered, 0.9),
    )


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Share of ``values`` in each bin ``[edges[i], edges[i+1])``; the last bin is closed.

    Values outside the edges fall in the first or last bin, so the shares always sum to 1
    (for a non-empty input) and two corpora binned alike are directly comparable.
    """
    bins = [0] * (len(edges) - 1)
    for v in values:
        i = 0
        while i < len(bins) - 1 and v >= edges[i + 1]:
            i += 1
        bins[i] += 1
    total = sum(bins)
    return [b / total if total else 0.0 for b in bins]


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two CDFs.

    0 for identical samples, 1 when every value of one lies below every value of the other.
    """
    if not a or not b:
        return 0.0 if not a and not b else 1.0
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(xs) and j < len(ys):
        v = min(xs[i], ys[j])
        while i < len(xs) and xs[i] <= v:
            i += 1
        while j < len(ys) and ys[j] <= v:
            j += 1
        gap = max(gap, abs(i / len(xs) - j / len(ys)))
    return gap


def js_divergence(p: Mapping[object, float], q: Mapping[object, float]) -> float:
    """Jensen–Shannon divergence of two (unnormalised) distributions, in bits: 0 to 1.

    0 exactly when the normalised distributions are equal, 1 when their supports are disjoint.
    An empty distribution against a non-empty one is 1; two empty ones are 0.
    """
    sp, sq = math.fsum(p.values()), math.fsum(q.values())
    if sp <= 0 or sq <= 0:
        return 0.0 if sp <= 0 and sq <= 0 else 1.0
    total = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0.0) / sp, q.get(key, 0.0) / sq
        m = (a + b) / 2
        if a > 0:
            total += a * math.log2(a / m)
        if b > 0:
            total += b * math.log2(b / m)
    return min(1.0, max(0.0, total / 2))


def ngram_js(a: Sequence[str], b: Sequence[str], n: int) -> float:
    """JS divergence (bits) between the word ``n``-gram distributions of two corpora."""
    ca: Counter[tuple[str, ...]] = ngram_counts(a, n)
    cb: Counter[tuple[str, ...]] = ngram_counts(b, n)
    return js_divergence({k: float(v) for k, v in ca.items()}, {k: float(v) for k, v in cb.items()})


@dataclass(frozen=True)
class LabelMix:
    """Label shares of two corpora and their total variation distance (0 equal, 1 disjoint)."""

    reference: dict[str, float]
    synthetic: dict[str, float]
    total_variation: float


def label_mix(reference: Sequence[str | None], synthetic: Sequence[str | None]) -> LabelMix:
    """Compare label shares (unlabelled records left out of both)."""

    def shares(labels: Sequence[str | None]) -> dict[str, float]:
        counts = Counter(label for label in labels if label)
        total = sum(counts.values())
        return {k: v / total for k, v in sorted(counts.items())} if total else {}

    ref, syn = shares(reference), shares(synthetic)
    tv = 0.5 * math.fsum(abs(ref.get(k, 0.0) - syn.get(k, 0.0)) for k in set(ref) | set(syn))
    return LabelMix(reference=ref, synthetic=syn, total_variation=tv)
