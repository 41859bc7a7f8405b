"""Privacy leakage: does the generator give its training records away?

Each measure compares how the model treats records it trained on with records of the holdout
that it never saw. A model that learned the distribution treats both alike; one that memorised
its records does not. All of them read private data (training records, holdout), so none is
covered by the model's DP guarantee; the report says so (:mod:`.report`).

* **Membership inference AUC** (loss attack, Yeom et al. 2018): how well the model's per-record
  loss separates training records from holdout records; 0.5 is chance, 1 is full memorisation.
  Also the true-positive rate at 1% false positives (Carlini et al. 2022: what matters is the
  records an attacker identifies with confidence, not the average).
* **Verbatim n-gram overlap**: the share of synthetic records containing a word 8-gram of a
  training record, against the same share for holdout records (and for a training subset of
  the holdout's size, which compares with it fairly). Overlap the holdout also shows is shared
  phrasing of the domain; the excess over it is copying.
* **Nearest-neighbour distance ratio** (distance to closest record, DCR, as synthetic-data
  audits use it): the median embedding distance from a synthetic record to its nearest
  training record, over the same median for holdout records, which the model never saw. About
  1 when samples are no closer to the training records than unseen real records are; near 0
  when they sit on top of training records.
* **Residual PII rate**: the share of synthetic records in which the scrubbing pipeline's
  analyzer still finds PII (training text was scrubbed, so any found was made up or missed).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from privsynth.server.evaluation.text import ngrams, words

__all__ = [
    "OVERLAP_N",
    "MembershipInference",
    "NearestNeighbour",
    "NgramOverlap",
    "ResidualPii",
    "membership_inference",
    "nearest_neighbour_ratio",
    "ngram_overlap",
    "residual_pii",
    "roc_points",
]

OVERLAP_N = 8

Vectors = NDArray[np.float64]


@dataclass(frozen=True)
class MembershipInference:
    """Loss-threshold attack on training vs holdout records."""

    auc: float
    tpr_at_1pct_fpr: float
    members: int
    non_members: int


def membership_inference(
    member_losses: Sequence[float], non_member_losses: Sequence[float]
) -> MembershipInference:
    """AUC of "lower loss means member" and the TPR at 1% FPR.

    The AUC is the Mann–Whitney statistic: the probability that a random member has a lower
    loss than a random non-member, ties counting one half.

    Raises:
        ValueError: Either side is empty.
    """
    if not member_losses or not non_member_losses:
        raise ValueError("membership inference needs members and non-members")
    scores = np.concatenate([-np.asarray(member_losses), -np.asarray(non_member_losses)])
    is_member = np.concatenate([np.ones(len(member_losses)), np.zeros(len(non_member_losses))])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(member_losses), len(non_member_losses)
    auc = (ranks[is_member == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    # Threshold at the non-members' 99th percentile score: at most 1% of them above it.
    neg = np.sort(-np.asarray(non_member_losses))
    cut = neg[min(len(neg) - 1, int(np.ceil(0.99 * len(neg))) - 1)]
    tpr = float(np.mean(-np.asarray(member_losses) > cut))
    return MembershipInference(
        auc=float(auc), tpr_at_1pct_fpr=tpr, members=n_pos, non_members=n_neg
    )


def roc_points(
    member_losses: Sequence[float], non_member_losses: Sequence[float], *, points: int = 50
) -> list[tuple[float, float]]:
    """The loss attack's ROC curve as (false-positive rate, true-positive rate) points.

    Thresholds run over quantiles of all losses ("member if loss ≤ t"), from (0, 0) to (1, 1);
    numbers only, for the report's plot.
    """
    members = np.sort(np.asarray(member_losses, dtype=np.float64))
    others = np.sort(np.asarray(non_member_losses, dtype=np.float64))
    if not len(members) or not len(others):
        return [(0.0, 0.0), (1.0, 1.0)]
    pooled = np.concatenate([members, others])
    curve = {(0.0, 0.0), (1.0, 1.0)}
    for t in np.quantile(pooled, np.linspace(0, 1, points)):
        tpr = np.searchsorted(members, t, side="right") / len(members)
        fpr = np.searchsorted(others, t, side="right") / len(others)
        curve.add((float(fpr), float(tpr)))
    return sorted(curve)


@dataclass(frozen=True)
class NgramOverlap:
    """Shares of synthetic records sharing a word ``n``-gram with each reference set."""

    n: int
    with_training: float
    """Against every training record: the leakage figure (1 for a model that copies)."""
    with_training_same_size: float
    """Against a random subset of training records as large as the holdout."""
    with_holdout: float
    """Against the holdout: phrasing the domain shares, the chance level of the line above."""
    longest_training_run: int
    """Most consecutive words of one synthetic record covered by matching training n-grams."""
    training_records: int
    holdout_records: int


def _gram_set(texts: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {g for t in texts for g in ngrams(words(t), n)}


def _overlap(
    samples: Sequence[list[str]], grams: set[tuple[str, ...]], n: int
) -> tuple[float, int]:
    hit, longest = 0, 0
    for toks in samples:
        run, matched = 0, False
        for g in ngrams(toks, n):
            if g in grams:
                matched = True
                run += 1
                longest = max(longest, run + n - 1)
            else:
                run = 0
        hit += matched
    return (hit / len(samples) if samples else 0.0), longest


def ngram_overlap(
    samples: Sequence[str],
    training: Sequence[str],
    holdout: Sequence[str],
    *,
    n: int = OVERLAP_N,
    seed: int = 0,
) -> NgramOverlap:
    """Verbatim overlap of ``samples`` with training records against that with the holdout.

    The overlap with all training records is the leakage figure; the one with a training
    subset of the holdout's size is what compares fairly with the holdout's.
    """
    toks = [words(s) for s in samples]
    with_train, longest = _overlap(toks, _gram_set(training, n), n)
    same = list(training)
    if len(same) > len(holdout) > 0:
        same = random.Random(seed).sample(same, len(holdout))
    with_same, _ = _overlap(toks, _gram_set(same, n), n)
    with_holdout, _ = _overlap(toks, _gram_set(holdout, n), n)
    return NgramOverlap(
        n=n,
        with_training=with_train,
        with_training_same_size=with_same,
        with_holdout=with_holdout,
        longest_training_run=longest,
        training_records=len(training),
        holdout_records=len(holdout),
    )


@dataclass(frozen=True)
class NearestNeighbour:
    """Distance to the closest training record (DCR) of synthetic and of holdout records."""

    synthetic_median: float
    """Median cosine distance from a synthetic record to its nearest training record."""
    holdout_median: float
    """The same for holdout records: how close unseen real records come by nature."""
    median_ratio: float
    """synthetic_median / holdout_median: about 1 without memorisation, 0 for copies."""
    closer_than_holdout_p5: float
    """Share of synthetic records nearer to training than 95% of holdout records are
    (about 0.05 by chance)."""
    copies: float
    """Share of synthetic records at distance ~0 (cosine distance < 1e-6) from one."""
    training_records: int


def _nearest(queries: Vectors, refs: Vectors) -> Vectors:
    """Each query row's smallest cosine distance to any reference row (unit-length rows)."""
    best = np.full(len(queries), np.inf)
    for start in range(0, len(refs), 2048):
        sims = queries @ refs[start : start + 2048].T
        best = np.minimum(best, (1.0 - sims).min(axis=1))
    out: Vectors = np.clip(best, 0.0, 2.0)
    return out


def nearest_neighbour_ratio(
    samples: Vectors, training: Vectors, holdout: Vectors
) -> NearestNeighbour:
    """Compare synthetic records' and holdout records' distances to the training records.

    Rows must be unit length (as both embedders return them). Holdout records were never
    trained on, so their distances are what a model that learned the distribution, rather than
    the records, produces.

    Raises:
        ValueError: A set is empty.
    """
    if not len(samples) or not len(training) or not len(holdout):
        raise ValueError("nearest-neighbour distances need samples, training and holdout rows")
    d_syn, d_hold = _nearest(samples, training), _nearest(holdout, training)
    syn_median, hold_median = float(np.median(d_syn)), float(np.median(d_hold))
    p5 = float(np.quantile(d_hold, 0.05))
    return NearestNeighbour(
        synthetic_median=syn_median,
        holdout_median=hold_median,
        median_ratio=syn_median / hold_median if hold_median > 1e-12 else 1.0,
        closer_than_holdout_p5=float(np.mean(d_syn < p5)),
        copies=float(np.mean(d_syn < 1e-6)),
        training_records=len(training),
    )


@dataclass(frozen=True)
class ResidualPii:
    """PII the scrubbing analyzer finds in synthetic records (types and counts only)."""

    rate: float
    """Share of records with at least one finding."""
    records: int
    by_type: dict[str, int]


def residual_pii(
    samples: Sequence[str], detect: Callable[[Sequence[str]], list[list[str]]]
) -> ResidualPii:
    """Run ``detect`` (entity types found, per text) over ``samples`` and count findings."""
    found = detect(list(samples)) if samples else []
    by_type: Counter[str] = Counter(t for types in found for t in types)
    flagged = sum(1 for types in found if types)
    return ResidualPii(
        rate=flagged / len(samples) if samples else 0.0,
        records=len(samples),
        by_type=dict(sorted(by_type.items())),
    )
