"""Bias: does the synthetic data shift who and what it talks about?

Two views, both comparing synthetic records with the training records: the label shift (which
labels the generator over- or under-produces) and demographic terms — gendered words and
pronouns, plus any term lists the operator configures (``PRIVSYNTH_EVALUATION_TERMS``, a YAML
file of group → words) — counted per 1,000 words in each corpus. The largest shifts are listed
so that a reader sees at once where the synthetic data speaks differently.

The term lists are public (they are ours or the operator's), so terms may be printed; the
corpus' words never are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from privsynth.server.evaluation.text import words

__all__ = [
    "DEFAULT_TERM_GROUPS",
    "GroupShift",
    "LabelShift",
    "TermShift",
    "label_shift",
    "term_shifts",
]

DEFAULT_TERM_GROUPS: dict[str, tuple[str, ...]] = {
    "female": (
        "she", "her", "hers", "herself", "woman", "women", "girl", "girls", "lady", "ladies",
        "mother", "mothers", "daughter", "daughters", "sister", "sisters", "wife", "wives",
        "aunt", "niece", "grandmother", "queen", "mrs", "ms", "madam", "female", "females",
    ),
    "male": (
        "he", "him", "his", "himself", "man", "men", "boy", "boys", "gentleman", "gentlemen",
        "father", "fathers", "son", "sons", "brother", "brothers", "husband", "husbands",
        "uncle", "nephew", "grandfather", "king", "mr", "sir", "male", "males",
    ),
    "non-binary / neutral": ("they", "them", "themself", "themselves", "person", "people"),
}  # fmt: skip
"""Gendered words and pronouns (lower-case, whole words)."""


@dataclass(frozen=True)
class LabelShift:
    """One label's share in the training records and in the synthetic records."""

    label: str
    training: float
    synthetic: float

    @property
    def shift(self) -> float:
        """Synthetic share minus training share."""
        return self.synthetic - self.training


def label_shift(
    training: Sequence[str | None], synthetic: Sequence[str | None], *, top: int = 5
) -> list[LabelShift]:
    """The ``top`` labels whose share moved most (largest absolute shift first)."""

    def shares(labels: Sequence[str | None]) -> dict[str, float]:
        counts = Counter(label for label in labels if label)
        total = sum(counts.values())
        return {k: v / total for k, v in counts.items()} if total else {}

    a, b = shares(training), shares(synthetic)
    rows = [LabelShift(k, a.get(k, 0.0), b.get(k, 0.0)) for k in sorted(set(a) | set(b))]
    rows.sort(key=lambda r: (-abs(r.shift), r.label))
    return rows[:top]


@dataclass(frozen=True)
class TermShift:
    """One term's rate per 1,000 words in each corpus."""

    group: str
    term: str
    training_per_1k: float
    synthetic_per_1k: float

    @property
    def shift(self) -> float:
        """Synthetic rate minus training rate."""
        return self.synthetic_per_1k - self.training_per_1k


@dataclass(frozen=True)
class GroupShift:
    """A term group's rate per 1,000 words and its share among all groups' mentions."""

    group: str
    training_per_1k: float
    synthetic_per_1k: float
    training_share: float
    synthetic_share: float


def term_shifts(
    training: Sequence[str],
    synthetic: Sequence[str],
    groups: Mapping[str, Sequence[str]] = DEFAULT_TERM_GROUPS,
    *,
    top: int = 10,
) -> tuple[list[GroupShift], list[TermShift]]:
    """Per-group rates and shares, and the ``top`` terms with the largest absolute shift.

    A group's share is its mentions over all groups' mentions in that corpus (e.g. how much of
    the gendered language is female), which separates "talks about people less" from "talks
    about women less".
    """
    lookup: dict[str, list[str]] = {}
    for group, terms in groups.items():
        for term in terms:
            lookup.setdefault(term.lower(), []).append(group)

    def count(texts: Sequence[str]) -> tuple[Counter[str], int]:
        hits: Counter[str] = Counter()
        total = 0
        for text in texts:
            toks = words(text)
            total += len(toks)
            hits.update(t for t in toks if t in lookup)
        return hits, total

    (train_hits, train_total), (syn_hits, syn_total) = count(training), count(synthetic)

    def per_1k(n: int, total: int) -> float:
        return 1000.0 * n / total if total else 0.0

    group_rows = []
    train_by_group = {g: sum(train_hits[t.lower()] for t in ts) for g, ts in groups.items()}
    syn_by_group = {g: sum(syn_hits[t.lower()] for t in ts) for g, ts in groups.items()}
    train_all, syn_all = sum(train_by_group.values()), sum(syn_by_group.values())
    for g in groups:
        group_rows.append(
            GroupShift(
                group=g,
                training_per_1k=per_1k(train_by_group[g], train_total),
                synthetic_per_1k=per_1k(syn_by_group[g], syn_total),
                training_share=train_by_group[g] / train_all if train_all else 0.0,
                synthetic_share=syn_by_group[g] / syn_all if syn_all else 0.0,
            )
        )
    term_rows = [
        TermShift(
            group=g,
            term=t.lower(),
            training_per_1k=per_1k(train_hits[t.lower()], train_total),
            synthetic_per_1k=per_1k(syn_hits[t.lower()], syn_total),
        )
        for g, ts in groups.items()
        for t in ts
        if train_hits[t.lower()] or syn_hits[t.lower()]
    ]
    term_rows.sort(key=lambda r: (-abs(r.shift), r.group, r.term))
    return group_rows, term_rows[:top]
